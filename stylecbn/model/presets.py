"""The network presets: the layer sizes of the style networks, as plain data (no Keras).

A preset names a `NetworkArchitecture`: "full" is the network of the built-in default model,
"fast" a thin one for CPUs (`stylecbn.model.network` describes both). The training settings
check a preset name and a normalization kind against this table without loading Keras.
"""

from dataclasses import dataclass

from stylecbn.errors import ConfigError

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
        object.__setattr__(self, "down_channels", tuple(int(c) for c in self.down_channels))
        object.__setattr__(self, "up_channels", tuple(int(c) for c in self.up_channels))
        if (
            len(self.down_channels) != 3
            or len(self.up_channels) != 2
            or min(self.down_channels + self.up_channels) < 1
        ):
            raise ValueError(
                "down_channels needs 3 and up_channels 2 positive channel counts. Received: "
                f"down_channels={self.down_channels}, up_channels={self.up_channels}"
            )
        if int(self.residual_blocks) < 1:
            raise ValueError(
                f"residual_blocks must be at least 1. Received: {self.residual_blocks}"
            )
        if int(self.edge_kernel) < 1 or int(self.edge_kernel) % 2 == 0:
            raise ValueError(
                f"edge_kernel must be a positive odd number. Received: {self.edge_kernel}"
            )
        object.__setattr__(self, "residual_blocks", int(self.residual_blocks))
        object.__setattr__(self, "edge_kernel", int(self.edge_kernel))


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
