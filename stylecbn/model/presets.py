"""The network presets: the layer sizes of the style networks, as plain data (no Keras).

A preset names a `NetworkArchitecture`: "full" is the network of the built-in default model,
"fast" a thin one for CPUs (`stylecbn.model.network` describes both). The training settings
check a preset name and a normalization kind against this table without loading Keras.
"""

from dataclasses import dataclass

from stylecbn.errors import ConfigError, check_int

__all__ = ["NORMALIZATION_KINDS", "NetworkArchitecture", "PRESETS", "preset_architecture"]

NORMALIZATION_KINDS = ("instance", "batch")


@dataclass(frozen=True)
class NetworkArchitecture:
    """The layer sizes of a style network (before its `width_multiplier`).

    Attributes:
        down_channels: output channels of the input convolution (full resolution) and of the
            two stride-2 convolutions (1/2 and 1/4 resolution).
        residual_blocks: residual blocks at 1/4 resolution (each keeps the width).
        up_channels: output channels of the two upsample-and-convolve stages (1/2 and full
            resolution).
        edge_kernel: kernel size of the input and the output convolution (odd).
    """

    down_channels: tuple = (32, 64, 128)
    residual_blocks: int = 5
    up_channels: tuple = (64, 32)
    edge_kernel: int = 9

    def __post_init__(self):
        for name, count in (("down_channels", 3), ("up_channels", 2)):
            channels = tuple(getattr(self, name))
            if len(channels) != count:
                raise ConfigError(
                    f"`{name}` must hold {count} channel counts. Received: {name}={channels}"
                )
            channels = tuple(check_int(name, c, minimum=1) for c in channels)
            object.__setattr__(self, name, channels)
        residual_blocks = check_int("residual_blocks", self.residual_blocks, minimum=1)
        edge_kernel = check_int("edge_kernel", self.edge_kernel, minimum=1, hint="odd")
        if edge_kernel % 2 == 0:
            raise ConfigError(
                f"`edge_kernel` must be odd. Received: edge_kernel={edge_kernel}"
            )
        object.__setattr__(self, "residual_blocks", residual_blocks)
        object.__setattr__(self, "edge_kernel", edge_kernel)


PRESETS = {
    "full": NetworkArchitecture(),
    "fast": NetworkArchitecture(
        down_channels=(8, 16, 32), residual_blocks=3, up_channels=(8, 4), edge_kernel=5
    ),
}


def preset_architecture(preset):
    """The `NetworkArchitecture` of a preset name (or the architecture itself if given one).

    Raises:
        ConfigError: an unknown name; the message lists the presets.
    """
    if isinstance(preset, NetworkArchitecture):
        return preset
    if preset not in PRESETS:
        raise ConfigError(
            f"Unknown network preset {preset!r}; use one of: {', '.join(PRESETS)}."
        )
    return PRESETS[preset]
