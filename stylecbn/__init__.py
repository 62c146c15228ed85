"""stylecbn: many painting styles in one feed-forward network, with conditional normalization.

Heavy modules (Keras, the network) load on first use, so `import stylecbn` is quick and the
CLI starts fast.
"""

__version__ = "0.1.0"

_LAZY = {
    "load_model": ("stylecbn.model.saving", "load_model"),
    "save_model": ("stylecbn.model.saving", "save_model"),
    "build_network": ("stylecbn.model.network", "build_network"),
    "StyleTransferNetwork": ("stylecbn.model.network", "StyleTransferNetwork"),
    "TrainingConfig": ("stylecbn.training.config", "TrainingConfig"),
    "Stylizer": ("stylecbn.applying.stylize", "Stylizer"),
    "Blend": ("stylecbn.applying.blend", "Blend"),
    "train": ("stylecbn.training.run", "train"),
    "ConditionalBatchNormalization": ("stylecbn.model.layers", "ConditionalBatchNormalization"),
    "ConditionalInstanceNormalization": ("stylecbn.model.layers",
                                         "ConditionalInstanceNormalization"),
    "ConditionalResidualBlock": ("stylecbn.model.layers", "ConditionalResidualBlock"),
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name):
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'stylecbn' has no attribute {name!r}")


def __dir__():
    return sorted(__all__)
