"""Where model files saved before stylecbn 0.2 look for the network class.

A `.keras` file records the module of its top-level class; files saved before the package was
split into wings (the shipped built-in model among them) name `stylecbn.network`. Keras 3
before 3.9 imports that module itself on a bare `keras.saving.load_model`; later versions
load after the user imports it. The network lives in `stylecbn.model.network`.
"""

from stylecbn.model.network import StyleTransferNetwork

__all__ = ["StyleTransferNetwork"]
