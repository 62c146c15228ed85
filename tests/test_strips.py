"""Strip inference runs the network's own stages: it equals `network.call` on every kind."""

from types import SimpleNamespace

import numpy as np
import pytest
from keras import ops

from stylecbn.applying.blend import resolve_style
from stylecbn.model.layers import ConditionalBatchNormalization, ConditionalResidualBlock
from stylecbn.model.network import ConvStage, build_network
from stylecbn.applying.strips import run_in_strips
from stylecbn.applying.conditioning import StyleField
from helpers import randomize_style_tables, seeded_network

NAMES = ["starry", "wave", "mosaic"]


def photo(h, w, seed=1):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    base = np.stack([x, y, 1 - x * y], axis=-1)
    return np.clip(base + rng.normal(0, 0.05, base.shape), 0, 1).astype(np.float32)


@pytest.mark.parametrize("normalization", ["instance", "batch"])
def test_strips_equal_network_call(normalization):
    net = randomize_style_tables(
        seeded_network(3, style_names=NAMES, normalization=normalization, width_multiplier=0.25),
        seed=3,
    )
    stages = net.stages
    # Every kind of stage the strips must mirror is in the network: plain, upsampling and
    # output convolutions, and residual blocks; and every norm is of the kind under test.
    kinds = {
        (type(s).__name__, getattr(s, "activation", None), getattr(s, "upsample", None) is not None)
        for s in stages
    }
    assert kinds == {
        ("ConvStage", "relu", False),
        ("ConvStage", "relu", True),
        ("ConvStage", "sigmoid", False),
        ("ConditionalResidualBlock", "relu", False),
    }
    assert all(
        isinstance(layer, ConditionalBatchNormalization) == (normalization == "batch")
        for layer in net.normalization_layers
    )
    assert [s for s in stages if isinstance(s, ConditionalResidualBlock)] == net.residual_blocks

    image = photo(45, 58)  # not a multiple of 4: the pad-and-crop is covered too
    rng = np.random.default_rng(0)
    fields = [
        StyleField(resolve_style("starry:1,wave:2", net)),
        StyleField(resolve_style(0, net), resolve_style(2, net), rng.random((45, 58)).astype(np.float32)),
    ]
    for field in fields:
        expected = ops.convert_to_numpy(net((image[None], field.network_input())))[0]
        # 150 output pixels per strip: every stage runs in many strips with halos.
        got = run_in_strips(net, image, field, strip_pixels=150)
        assert got.shape == expected.shape == (45, 58, 3)
        # float32 throughout; the strips sum statistics in float64 where the network uses
        # float32 moments, so differences stay at the 1e-6 level; 1e-4 is far below the
        # 1/255 step of the uint8 output.
        assert np.abs(got - expected).max() < 1e-4


def test_strips_refuse_blocks_they_cannot_mirror():
    net = build_network(1, width_multiplier=0.25)
    block = ConditionalResidualBlock(8, 1, padding="same")  # zero padding: not strip-exact
    block.build((None, None, None, 8))
    other = SimpleNamespace(stages=(ConvStage(net.convs[0], net.norms[0], "relu"), block),
                            architecture=net.architecture)
    with pytest.raises(ValueError, match="reflect padding"):
        run_in_strips(other, photo(16, 16), StyleField(resolve_style(0, net)))
