"""Where model files saved before stylecbn 0.2 look for the network class.

A `.keras` file records the module of its top-level class; files saved before the package was
split into wings (the shipped built-in model among them) name `stylecbn.network`, so that a
bare `keras.saving.load_model` in a fresh interpreter can import it. The network lives in
`stylecbn.model.network`.
"""

from stylecbn.model.network import StyleTransferNetwork

__all__ = ["StyleTransferNetwork"]
