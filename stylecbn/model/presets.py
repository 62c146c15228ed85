"""The network presets: the layer sizes of the style networks, as plain data (no Keras).

A preset names a `NetworkArchitecture`: "full" is the network of the built-in default model,
"fast" a thin one for CPUs, "lowres" and "lowres-separable" students for distillation that
compute at half resolution (`stylecbn.model.network` describes them). The training settings
check a preset name and a normalization kind against this table without loading Keras.
"""

from dataclasses import dataclass

from stylecbn.errors import ConfigError, check_int

__all__ = [
    "NORMALIZATION_KINDS", "NetworkArchitecture", "PRESETS", "SHUFFLES", "preset_architecture",
]

NORMALIZATION_KINDS = ("instance", "batch")


@dataclass(frozen=True)
class NetworkArchitecture:
    """The layer sizes of a style network (before its `width_multiplier`).

    Attributes:
        down_channels: output channels of the input convolution (full resolution) and of the
            two stride-2 convolutions (1/2 and 1/4 resolution); resolutions are halved again
            at shuffle 2.
        residual_blocks: residual blocks at 1/4 resolution (each keeps the width).
        up_channels: output channels of the two upsample-and-convolve stages (1/2 and full
            resolution).
        edge_kernel: kernel size of the input and the output convolution (odd).
        shuffle: the resolution the network computes at, as a divisor: 1 or 2 (4 would leave
            1 px at the residual blocks of the smallest images read, 16 px). At 2, the
            photo's pixels are rearranged into channels first (space to depth: each 2x2
            block of pixels becomes one pixel of 12 channels), every stage runs at half the
            resolution, and the output convolution makes 12 channels that are rearranged
            back into pixels (depth to space, Shi et al.'s "pixel shuffle", CVPR 2016): no
            convolution runs at full resolution.
        separable: the residual blocks' 3x3 convolutions are depthwise-separable (a 3x3
            depthwise convolution then a 1x1 one; Howard et al., MobileNets, 2017).
    """

    down_channels: tuple = (32, 64, 128)
    residual_blocks: int = 5
    up_channels: tuple = (64, 32)
    edge_kernel: int = 9
    shuffle: int = 1
    separable: bool = False

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
        shuffle = check_int("shuffle", self.shuffle, minimum=1, maximum=max(SHUFFLES))
        if not isinstance(self.separable, bool):
            raise ConfigError(
                f"`separable` must be true or false. Received: separable={self.separable!r}"
            )
        object.__setattr__(self, "residual_blocks", residual_blocks)
        object.__setattr__(self, "edge_kernel", edge_kernel)
        object.__setattr__(self, "shuffle", shuffle)

    def as_config(self):
        """The fields as a model file's config.json stores them: `shuffle` and `separable`
        only when they differ from 1 and false, so the files of networks without them stay
        what they were before these options existed."""
        config = {
            "down_channels": self.down_channels, "residual_blocks": self.residual_blocks,
            "up_channels": self.up_channels, "edge_kernel": self.edge_kernel,
        }
        if self.shuffle != 1:
            config["shuffle"] = self.shuffle
        if self.separable:
            config["separable"] = True
        return config

    @property
    def multiple(self):
        """The network's images are reflect-padded to a multiple of this (and cropped back):
        two stride-2 convolutions at 1/shuffle resolution."""
        return 4 * self.shuffle


SHUFFLES = (1, 2)

PRESETS = {
    "full": NetworkArchitecture(),
    "fast": NetworkArchitecture(
        down_channels=(8, 16, 32), residual_blocks=3, up_channels=(8, 4), edge_kernel=5
    ),
    # Students for distillation that compute at half resolution (no full-resolution
    # convolution), twice as wide as "fast" at every stage and a level deeper.
    "lowres": NetworkArchitecture(
        down_channels=(16, 32, 64), residual_blocks=3, up_channels=(32, 16), edge_kernel=3,
        shuffle=2,
    ),
    "lowres-separable": NetworkArchitecture(
        down_channels=(16, 32, 64), residual_blocks=3, up_channels=(32, 16), edge_kernel=3,
        shuffle=2, separable=True,
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
