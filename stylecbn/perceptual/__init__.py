"""The perceptual wing: the VGG-16 loss network (`vgg`) and the perceptual loss (`losses`).

Training optimizes this loss; applying may too (refining an output). Imports only the ground
floor.
"""

from stylecbn.backend import start_quietly

start_quietly()  # this wing uses Keras: start it without TensorFlow's native chatter
