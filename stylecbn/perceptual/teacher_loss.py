"""The loss of distillation: how far a student network's images are from its teacher's.

A student that copies its teacher's pixels learns the colours and loses the texture (a pixel
loss averages a texture the student cannot place exactly into a blur; issue 20's trial). So
the loss asks for what a person sees of a painting's texture, not its exact pixels:

- pixel: mean |A(student) - A(teacher)| with A a 4x4 average (colours and shapes, in [0, 1]
  units);
- gram: per VGG-16 layer, the mean squared difference of the two images' Gram matrices
  (the texture statistics the style loss also compares), summed over layers; "relative"
  divides each layer's by the mean square of the teacher's own Gram matrices (scale-free:
  each layer counts alike whatever its magnitude), "absolute" keeps it as the style loss does
  (then relu1_2's term, the largest, counts most, as in the teacher's training loss: with
  `gram` equal to the teacher's style weight it is the teacher's style loss with the
  teacher's image as the target);
- feature: the mean squared difference of the VGG features at one layer, relative to the
  mean square of the teacher's (Wang et al., "Collaborative Distillation", CVPR 2020, match
  features rather than pixels).

The teacher's features need no gradient: they are computed under `stop_gradient`. All in
`keras.ops`, in float32, on any backend.
"""

import dataclasses

from stylecbn.backend import start_quietly

start_quietly()  # Keras starts here, without TensorFlow's native chatter (stylecbn.backend)

from keras import ops

from stylecbn.errors import ConfigError, check_number
from stylecbn.perceptual.losses import gram_matrix

__all__ = ["DISTILL_TERMS", "GRAM_NORMALIZATIONS", "TeacherLoss", "TeacherLossWeights"]

DISTILL_TERMS = ("total_loss", "pixel_loss", "gram_loss", "feature_loss")
GRAM_NORMALIZATIONS = ("relative", "absolute")
POOL = 4  # side of the average that the pixel term compares


@dataclasses.dataclass(frozen=True)
class TeacherLossWeights:
    """The weights and layers of a `TeacherLoss` (see the module docstring)."""

    pixel: float = 10.0
    gram: float = 1e-3
    feature: float = 100.0
    gram_layers: tuple = ("block1_conv2", "block2_conv2")
    feature_layer: str = "block2_conv2"
    gram_normalization: str = "absolute"

    def __post_init__(self):
        for name in ("pixel", "gram", "feature"):
            object.__setattr__(self, name, check_number(name, getattr(self, name), minimum=0))
        object.__setattr__(self, "gram_layers", tuple(self.gram_layers))
        if self.gram_normalization not in GRAM_NORMALIZATIONS:
            raise ConfigError(f"gram_normalization must be one of "
                              f"{', '.join(GRAM_NORMALIZATIONS)}. Received: "
                              f"{self.gram_normalization!r}")

    @property
    def layers(self):
        """The VGG-16 layers the loss network must return (none when only pixels count)."""
        layers = list(self.gram_layers) if self.gram else []
        if self.feature and self.feature_layer not in layers:
            layers.append(self.feature_layer)
        return tuple(layers)


class TeacherLoss:
    """Callable `(teacher_images, student_images) -> (total, terms)`.

    Args:
        loss_network: returns {layer: features} for RGB images in [0, 1] (a VGG-16 from
            `stylecbn.perceptual.vgg.build_loss_network`); None when the weights need no
            layer (pixel term only).
        weights: a `TeacherLossWeights`.

    Call arguments: (B, H, W, 3) images in [0, 1], any float dtype; H and W multiples of
    `POOL` for the pixel term.

    Returns: (total, {"total_loss", "pixel_loss", "gram_loss", "feature_loss"}: float32
    scalars; a term whose weight is 0 is reported as 0 and not computed).
    """

    def __init__(self, loss_network, weights):
        self.loss_network = loss_network
        self.weights = weights
        if weights.layers:
            if loss_network is None:
                raise ConfigError("the Gram and feature terms need a loss network; none given")
            missing = [layer for layer in weights.layers if layer not in loss_network.output]
            if missing:
                raise ConfigError(
                    f"the loss network returns no layer {', '.join(missing)}; it returns "
                    f"{', '.join(loss_network.output)}")

    def __call__(self, teacher_images, student_images):
        weights = self.weights
        teacher = ops.cast(teacher_images, "float32")
        student = ops.cast(student_images, "float32")
        zero = ops.zeros((), "float32")
        pixel = gram = feature = zero
        if weights.pixel:
            pixel = ops.mean(ops.abs(_low_pass(student) - _low_pass(teacher)))
        if weights.layers:
            taught = {name: ops.stop_gradient(ops.cast(value, "float32"))
                      for name, value in self.loss_network(teacher).items()}
            learnt = {name: ops.cast(value, "float32")
                      for name, value in self.loss_network(student).items()}
            if weights.gram:
                relative = weights.gram_normalization == "relative"
                for layer in weights.gram_layers:
                    target = gram_matrix(taught[layer])
                    learnt_gram = gram_matrix(learnt[layer])
                    gram = gram + (_relative(learnt_gram, target) if relative
                                   else ops.mean(ops.square(learnt_gram - target)))
            if weights.feature:
                layer = weights.feature_layer
                feature = _relative(learnt[layer], taught[layer])
        total = weights.pixel * pixel + weights.gram * gram + weights.feature * feature
        return total, {"total_loss": total, "pixel_loss": pixel, "gram_loss": gram,
                       "feature_loss": feature}


def _low_pass(images):
    return ops.average_pool(images, POOL, strides=POOL, padding="valid")


def _relative(value, target):
    """mean((value - target)^2) / mean(target^2), over the whole batch (a flat crop's tiny
    Gram matrices then weigh no more than its share)."""
    return ops.mean(ops.square(value - target)) / ops.maximum(ops.mean(ops.square(target)), 1e-12)
