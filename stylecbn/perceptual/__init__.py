"""The perceptual wing: the VGG-16 loss network (`vgg`), the perceptual loss (`losses`) and
the optimization of an image against it (`optimize`).

Training optimizes this loss; applying does too (refining an output). Imports only the ground
floor.
"""

from stylecbn.backend import start_quietly

start_quietly()  # this wing uses Keras: start it without TensorFlow's native chatter
