"""Conditional normalization layers and the residual block, against NumPy and Keras references.

Runs on whatever backend KERAS_BACKEND selects; tests/test_backends.py runs it on JAX too.
"""

import numpy as np
import pytest
import keras
from keras import ops

from stylecbn.model.layers import (
    HostGlorotUniform,
    ConditionalBatchNormalization,
    ConditionalInstanceNormalization,
    ConditionalResidualBlock,
)

EPS = 1e-3


def np_(x):
    return ops.convert_to_numpy(x)


def rand(*shape, seed=0, scale=1.0, shift=0.0):
    return (np.random.default_rng(seed).normal(size=shape) * scale + shift).astype("float32")


def built(layer, channels, classes_input=None):
    layer.build((None, None, None, channels))
    return layer


def set_tables(layer, seed=1):
    rng = np.random.default_rng(seed)
    layer.gamma.assign(rng.uniform(0.5, 2.0, size=layer.gamma.shape).astype("float32"))
    layer.beta.assign(rng.normal(size=layer.beta.shape).astype("float32"))


def np_batch_norm(x, mean, var, gamma, beta, eps=EPS):
    return (x - mean) / np.sqrt(var + eps) * gamma + beta


# ---- weights, shapes, config -------------------------------------------------------------


@pytest.mark.parametrize(
    "cls, extra_non_trainable",
    [(ConditionalBatchNormalization, 2), (ConditionalInstanceNormalization, 0)],
)
def test_weight_counts_and_initial_values(cls, extra_non_trainable):
    layer = built(cls(num_classes=5), 7)
    assert len(layer.trainable_weights) == 2
    assert len(layer.non_trainable_weights) == extra_non_trainable
    assert layer.gamma.shape == (5, 7) and layer.beta.shape == (5, 7)
    assert layer.count_params() == 2 * 5 * 7 + extra_non_trainable * 7
    np.testing.assert_array_equal(np_(layer.gamma), np.ones((5, 7)))
    np.testing.assert_array_equal(np_(layer.beta), np.zeros((5, 7)))


@pytest.mark.parametrize("cls", [ConditionalBatchNormalization, ConditionalInstanceNormalization])
def test_output_shape_and_config_round_trip(cls):
    layer = cls(num_classes=3, epsilon=1e-4, name="cn")
    x = rand(2, 5, 6, 4)
    y = layer(x, np.array([0, 2]))
    assert tuple(y.shape) == (2, 5, 6, 4)
    config = layer.get_config()
    clone = cls.from_config(config)
    assert clone.get_config() == config
    assert clone.num_classes == 3 and clone.epsilon == 1e-4
    clone(x, np.array([0, 2]))
    clone.set_weights(layer.get_weights())
    np.testing.assert_array_equal(np_(clone(x, np.array([0, 2]))), np_(y))


def test_batch_norm_config_keeps_momentum():
    layer = ConditionalBatchNormalization(num_classes=2, momentum=0.9)
    assert ConditionalBatchNormalization.from_config(layer.get_config()).momentum == 0.9


@pytest.mark.parametrize(
    "kwargs",
    [{"num_classes": 0}, {"num_classes": 2, "epsilon": 0.0}, {"num_classes": 2, "momentum": 1.0}],
)
def test_invalid_arguments(kwargs):
    with pytest.raises(ValueError):
        ConditionalBatchNormalization(**kwargs)


def test_wrong_style_width_and_rank_are_errors():
    layer = ConditionalInstanceNormalization(num_classes=3)
    x = rand(2, 4, 4, 2)
    with pytest.raises(ValueError, match="num_classes=3"):
        layer(x, np.ones((2, 4), "float32"))
    with pytest.raises(ValueError, match="style input"):
        layer(x, np.ones((2, 3, 1), "float32"))


# The seed article's block: see docs/seed_defects.md.
SEED_BLOCK = dict(
    normalization="batch", activation="leaky_relu", activation_after_add_path=True, padding="same"
)


# ---- the seed article's six defects, one test each ---------------------------------------


def test_seed_defect_1_gamma_starts_at_one():
    # Seed: gamma initialised to zeros, so every output would be beta (zero).
    layer = ConditionalInstanceNormalization(num_classes=2)
    x = rand(2, 6, 6, 3, scale=3.0, shift=1.0)
    y = np_(layer(x, np.array([0, 1])))
    mean = x.mean(axis=(1, 2), keepdims=True)
    var = x.var(axis=(1, 2), keepdims=True)
    np.testing.assert_allclose(y, (x - mean) / np.sqrt(var + EPS), rtol=1e-5, atol=1e-5)
    assert np.abs(y).mean() > 0.5


def test_seed_defect_2_moving_variance_starts_at_one():
    # Seed: moving_var initialised to zeros, so inference divided by sqrt(eps) (x ~31 gain).
    layer = ConditionalBatchNormalization(num_classes=2)
    x = rand(2, 4, 4, 3)
    y = np_(layer(x, np.array([0, 1]), training=False))
    np.testing.assert_array_equal(np_(layer.moving_variance), np.ones(3))
    np.testing.assert_allclose(y, x / np.sqrt(1 + EPS), rtol=1e-6, atol=1e-6)


def test_seed_defect_3_beta_is_created_and_used():
    # Seed: `self.beta` was gathered in call but never created in build.
    layer = ConditionalBatchNormalization(num_classes=2)
    x = rand(2, 4, 4, 3)
    layer(x, np.array([0, 1]))
    assert any(w.path.endswith("beta") for w in layer.trainable_weights)
    layer.beta.assign(np.array([[1.0, 2.0, 3.0], [-1.0, -2.0, -3.0]], "float32"))
    y = np_(layer(x, np.array([0, 1]), training=False))
    base = x / np.sqrt(1 + EPS)
    np.testing.assert_allclose(y[0] - base[0], np.broadcast_to([1.0, 2.0, 3.0], (4, 4, 3)), atol=1e-5)
    np.testing.assert_allclose(y[1] - base[1], np.broadcast_to([-1.0, -2.0, -3.0], (4, 4, 3)), atol=1e-5)


def test_seed_defect_4_training_flag_selects_statistics():
    # Seed: `call(..., trainable=False)` but the body tested an undefined `training`.
    layer = ConditionalBatchNormalization(num_classes=1)
    x = rand(4, 5, 5, 3, scale=2.0, shift=5.0)
    labels = np.zeros(4, "int32")
    y_train = np_(layer(x, labels, training=True))
    mean, var = x.mean(axis=(0, 1, 2)), x.var(axis=(0, 1, 2))
    np.testing.assert_allclose(y_train, np_batch_norm(x, mean, var, 1, 0), rtol=1e-4, atol=1e-4)
    layer2 = ConditionalBatchNormalization(num_classes=1)
    y_infer = np_(layer2(x, labels, training=False))
    np.testing.assert_allclose(y_infer, x / np.sqrt(1 + EPS), rtol=1e-5)
    assert not np.allclose(y_train, y_infer, atol=1e-2)


def test_seed_defect_5_gamma_beta_broadcast_per_sample():
    # Seed: expand_dims(beta, 1) gave (N, 1, C), which broadcasts across H, not per sample.
    layer = ConditionalInstanceNormalization(num_classes=3)
    x = rand(3, 4, 4, 2)
    layer(x, np.array([0, 1, 2]))
    set_tables(layer)
    labels = np.array([2, 0, 1])
    y = np_(layer(x, labels))
    g, b = np_(layer.gamma), np_(layer.beta)
    mean = x.mean(axis=(1, 2), keepdims=True)
    var = x.var(axis=(1, 2), keepdims=True)
    expected = (x - mean) / np.sqrt(var + EPS) * g[labels][:, None, None, :] + b[labels][:, None, None, :]
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)


def test_seed_defect_6_hyperparameters_are_set_and_used():
    # Seed: self.decay, self.eps and self.n_class were never set (and the block called tf.cbn_2).
    layer = ConditionalBatchNormalization(num_classes=2, momentum=0.5, epsilon=0.25)
    assert (layer.num_classes, layer.momentum, layer.epsilon) == (2, 0.5, 0.25)
    x = rand(4, 3, 3, 2, shift=2.0)
    y = np_(layer(x, np.array([0, 1, 0, 1]), training=True))
    mean, var = x.mean(axis=(0, 1, 2)), x.var(axis=(0, 1, 2))
    np.testing.assert_allclose(np_(layer.moving_mean), 0.5 * 0 + 0.5 * mean, rtol=1e-5)
    np.testing.assert_allclose(np_(layer.moving_variance), 0.5 * 1 + 0.5 * var, rtol=1e-5)
    np.testing.assert_allclose(y, np_batch_norm(x, mean, var, 1, 0, eps=0.25), rtol=1e-4, atol=1e-5)
    # The block's second normalization is its own layer and is applied (the seed's `tf.cbn_2`).
    block = ConditionalResidualBlock(2, num_classes=2, **SEED_BLOCK)
    block.build((None, None, None, 2))
    before = np_(block(x, np.array([0, 1, 0, 1])))
    block.norm_2.beta.assign(np.full((2, 2), 3.0, "float32"))
    after = np_(block(x, np.array([0, 1, 0, 1])))
    assert not np.allclose(before, after)


# ---- references -----------------------------------------------------------------------------


def test_one_class_batch_norm_equals_keras_batch_normalization_over_steps():
    cbn = ConditionalBatchNormalization(num_classes=1, momentum=0.9, epsilon=1e-3)
    bn = keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-3)
    shape = (None, None, None, 4)
    cbn.build(shape)
    bn.build(shape)
    rng = np.random.default_rng(3)
    gamma = rng.uniform(0.5, 1.5, 4).astype("float32")
    beta = rng.normal(size=4).astype("float32")
    cbn.gamma.assign(gamma[None])
    cbn.beta.assign(beta[None])
    bn.gamma.assign(gamma)
    bn.beta.assign(beta)
    labels = np.zeros(6, "int32")
    for step in range(5):
        x = rand(6, 5, 7, 4, seed=10 + step, scale=1.0 + step, shift=step)
        np.testing.assert_allclose(
            np_(cbn(x, labels, training=True)), np_(bn(x, training=True)), rtol=1e-4, atol=1e-4
        )
        np.testing.assert_allclose(np_(cbn.moving_mean), np_(bn.moving_mean), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(
            np_(cbn.moving_variance), np_(bn.moving_variance), rtol=1e-5, atol=1e-6
        )
        np.testing.assert_allclose(
            np_(cbn(x, labels, training=False)), np_(bn(x, training=False)), rtol=1e-4, atol=1e-4
        )


def test_one_class_instance_norm_equals_keras_group_normalization():
    channels = 5
    cin = ConditionalInstanceNormalization(num_classes=1, epsilon=1e-3)
    gn = keras.layers.GroupNormalization(groups=channels, epsilon=1e-3)
    cin.build((None, None, None, channels))
    gn.build((None, None, None, channels))
    rng = np.random.default_rng(4)
    gamma = rng.uniform(0.5, 1.5, channels).astype("float32")
    beta = rng.normal(size=channels).astype("float32")
    cin.gamma.assign(gamma[None])
    cin.beta.assign(beta[None])
    gn.gamma.assign(gamma)
    gn.beta.assign(beta)
    x = rand(3, 6, 4, channels, scale=3.0, shift=-1.0)
    labels = np.zeros(3, "int32")
    for training in (True, False):
        np.testing.assert_allclose(
            np_(cin(x, labels, training=training)), np_(gn(x)), rtol=1e-4, atol=1e-4
        )


@pytest.mark.parametrize("cls", [ConditionalBatchNormalization, ConditionalInstanceNormalization])
def test_one_hot_weights_equal_labels_exactly(cls):
    layer = cls(num_classes=4)
    x = rand(3, 5, 5, 6)
    labels = np.array([3, 0, 2])
    layer(x, labels)
    set_tables(layer)
    one_hot = np.eye(4, dtype="float32")[labels]
    for training in (True, False):
        layer_copy = cls.from_config(layer.get_config())
        layer_copy(x, labels)
        layer_copy.set_weights(layer.get_weights())
        y_labels = np_(layer_copy(x, labels, training=training))
        layer_copy.set_weights(layer.get_weights())
        y_weights = np_(layer_copy(x, one_hot, training=training))
        np.testing.assert_array_equal(y_labels, y_weights)


def test_style_weights_mix_rows():
    layer = ConditionalInstanceNormalization(num_classes=3)
    x = rand(2, 4, 4, 5)
    layer(x, np.array([0, 1]))
    set_tables(layer)
    weights = np.array([[0.2, 0.3, 0.5], [1.0, 0.0, 0.0]], "float32")
    y = np_(layer(x, weights))
    g, b = weights @ np_(layer.gamma), weights @ np_(layer.beta)
    mean = x.mean(axis=(1, 2), keepdims=True)
    var = x.var(axis=(1, 2), keepdims=True)
    expected = (x - mean) / np.sqrt(var + EPS) * g[:, None, None] + b[:, None, None]
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)


def test_per_pixel_weights_resize_and_select_regions():
    layer = ConditionalInstanceNormalization(num_classes=2)
    x = rand(1, 8, 8, 3)
    layer(x, np.array([0]))
    set_tables(layer)
    # Constant per-pixel weights at another resolution equal the plain weight vector.
    w = np.array([0.25, 0.75], "float32")
    const = np.broadcast_to(w, (1, 3, 5, 2)).copy()
    np.testing.assert_allclose(
        np_(layer(x, const)), np_(layer(x, w[None])), rtol=1e-5, atol=1e-5
    )
    # Left half style 0, right half style 1 (mask at 4x the layer's resolution).
    mask = np.zeros((1, 32, 32, 2), "float32")
    mask[:, :, :16, 0] = 1.0
    mask[:, :, 16:, 1] = 1.0
    y = np_(layer(x, mask))
    y0 = np_(layer(x, np.array([0])))
    y1 = np_(layer(x, np.array([1])))
    # Away from the boundary (antialiased resize blurs one pixel on each side).
    np.testing.assert_allclose(y[:, :, :3], y0[:, :, :3], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(y[:, :, 5:], y1[:, :, 5:], rtol=1e-5, atol=1e-5)


def test_batch_norm_training_output_differs_from_inference():
    layer = ConditionalBatchNormalization(num_classes=2)
    x = rand(4, 4, 4, 3, scale=4.0, shift=3.0)
    labels = np.array([0, 1, 1, 0])
    y_train = np_(layer(x, labels, training=True))
    y_infer = np_(layer(x, labels, training=False))
    assert not np.allclose(y_train, y_infer, atol=1e-2)
    # Frozen layers (trainable=False) use the moving statistics even in training mode.
    layer.trainable = False
    before = np_(layer.moving_mean).copy()
    np.testing.assert_allclose(np_(layer(x, labels, training=True)), y_infer, rtol=1e-5)
    np.testing.assert_array_equal(np_(layer.moving_mean), before)


@pytest.mark.parametrize("cls", [ConditionalBatchNormalization, ConditionalInstanceNormalization])
def test_mixed_bfloat16_statistics_in_float32(cls):
    x = rand(2, 6, 6, 4, scale=30.0, shift=500.0)
    labels = np.array([0, 1])
    ref = cls(num_classes=2)
    y_ref = np_(ref(x, labels, training=True))
    layer = cls(num_classes=2, dtype="mixed_bfloat16")
    y = layer(ops.cast(x, "bfloat16"), labels, training=True)
    assert y.dtype == "bfloat16"
    assert layer.gamma.dtype == "float32"
    if cls is ConditionalBatchNormalization:
        assert layer.moving_mean.dtype == "float32"
        np.testing.assert_allclose(np_(layer.moving_mean), np_(ref.moving_mean), rtol=1e-2)
    # A large mean with a small spread: bfloat16 statistics would lose the signal entirely.
    # The input's own bfloat16 rounding remains: half a spacing, up to 2 for values in
    # [512, 1024), over a channel spread of about 30 (25 at the least in 36-72 samples): 0.08;
    # plus the output's rounding, 2^-7 for |y| < 4. Measured 0.067-0.087 over six input
    # draws; 0.15 allows a spread down to 15.
    np.testing.assert_allclose(np_(ops.cast(y, "float32")), y_ref, atol=0.15)
    assert np.std(np_(ops.cast(y, "float32"))) > 0.5


# ---- residual block ------------------------------------------------------------------------


def _reference_block(block, x):
    """The seed's block written out with Keras' own layers (one style, batch norm, inference)."""
    act = keras.layers.LeakyReLU(negative_slope=0.2)

    def norm(cbn, h):
        bn = keras.layers.BatchNormalization(epsilon=cbn.epsilon)
        bn.build(h.shape)
        bn.set_weights([np_(cbn.gamma)[0], np_(cbn.beta)[0], np_(cbn.moving_mean), np_(cbn.moving_variance)])
        return bn(h, training=False)

    h = act(norm(block.norm_1, block.conv_1(x)))
    h = act(norm(block.norm_2, block.conv_2(h)))
    skip = act(norm(block.norm_skip, block.conv_skip(x))) if block.conv_skip is not None else x
    return np_(h) + np_(skip)


@pytest.mark.parametrize("in_channels, learned_skip", [(4, False), (3, True)])
def test_residual_block_matches_keras_reference(in_channels, learned_skip):
    block = ConditionalResidualBlock(4, num_classes=1, **SEED_BLOCK)
    x = rand(2, 6, 6, in_channels)
    labels = np.zeros(2, "int32")
    y = np_(block(x, labels, training=False))
    assert y.shape == (2, 6, 6, 4)
    assert (block.conv_skip is not None) == learned_skip
    for norm in [block.norm_1, block.norm_2] + ([block.norm_skip] if learned_skip else []):
        set_tables(norm)
    y = np_(block(x, labels, training=False))
    np.testing.assert_allclose(y, _reference_block(block, x), rtol=1e-4, atol=1e-4)


def test_block_defaults_are_the_style_networks_block():
    block = ConditionalResidualBlock(4, num_classes=2)
    assert (block.normalization, block.activation, block.activation_after_add_path, block.padding) == (
        "instance", "relu", False, "reflect"
    )
    x = rand(2, 6, 6, 4)
    y = np_(block(x, np.array([0, 1])))
    h = ops.relu(block.norm_1(block.conv_1(ops.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="reflect")), np.array([0, 1])))
    h = block.norm_2(block.conv_2(ops.pad(h, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="reflect")), np.array([0, 1]))
    np.testing.assert_allclose(y, x + np_(h), rtol=1e-5, atol=1e-5)
    assert np.any(y < x - 0.1)  # no ReLU after the addition's main path: negative residuals pass
    clone = ConditionalResidualBlock.from_config(block.get_config())
    assert clone.get_config() == block.get_config()
    n_weights = 2 * 3 * 3 * 4 * 4 + 2 * (2 * 2 * 4)
    assert block.count_params() == n_weights


def test_residual_block_rejects_bad_options():
    with pytest.raises(ValueError, match="activation"):
        ConditionalResidualBlock(4, 2, activation="gelu")
    with pytest.raises(ValueError, match="padding"):
        ConditionalResidualBlock(4, 2, padding="valid")


def test_host_glorot_uniform_matches_keras_distribution_and_follows_python_seed():
    import random

    shape = (3, 3, 64, 128)
    limit = np.sqrt(6 / (9 * 64 + 9 * 128))  # Glorot: fans include the 3x3 receptive field
    random.seed(0)
    values = HostGlorotUniform()(shape, "float32")
    assert values.shape == shape and values.dtype == np.float32
    keras_values = ops.convert_to_numpy(keras.initializers.GlorotUniform(seed=0)(shape))
    for drawn in (values, keras_values):
        assert np.abs(drawn).max() <= limit
        # The sample variance of n = 73,728 uniform draws has a relative standard error of
        # sqrt((9/5 - 1) / n) = 0.33% (kurtosis 9/5): 2% is six of them.
        np.testing.assert_allclose(drawn.var(), limit**2 / 3, rtol=0.02)
    random.seed(0)
    np.testing.assert_array_equal(HostGlorotUniform()(shape, "float32"), values)
    assert not np.array_equal(HostGlorotUniform()(shape, "float32"), values)
