"""The model wing: the network and its file.

`presets` the layer sizes of the named networks (plain data, no Keras); `layers` the
conditional normalizations and the residual block; `network` the `StyleTransferNetwork` built
from them; `saving` the `.keras` model file (metadata, the built-in models); `targets` the
style targets a model file carries; `export` SavedModel, TensorFlow Lite and ONNX; `convert`
the network for OpenVINO, cached. Imports only the ground floor.
"""
