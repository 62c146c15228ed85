"""Tests of the perceptual losses (stylecbn.perceptual.losses) against NumPy references."""

import keras
import numpy as np
import pytest
from keras import ops

from stylecbn.perceptual import losses
from stylecbn.errors import ConfigError, ImageError
from stylecbn.perceptual.losses import LossWeights, PerceptualLoss, compute_style_grams, gram_matrix

STYLE_LAYERS = ("block1_conv2", "block3_conv3")
CONTENT_LAYER = "block3_conv3"


def tiny_loss_network(dtype=None):
    """Two convolutions named like VGG layers, outputting a dict: no weights file needed."""
    inputs = keras.Input((None, None, 3))
    first = keras.layers.Conv2D(
        4, 3, padding="same", activation="relu", name="block1_conv2", dtype=dtype,
        kernel_initializer=keras.initializers.RandomNormal(0, 0.5, seed=1),
        bias_initializer=keras.initializers.Constant(0.1),
    )(inputs)
    pooled = keras.layers.MaxPooling2D(2, name="block1_pool", dtype=dtype)(first)
    second = keras.layers.Conv2D(
        6, 3, padding="same", activation="relu", name="block3_conv3", dtype=dtype,
        kernel_initializer=keras.initializers.RandomNormal(0, 0.5, seed=2),
        bias_initializer=keras.initializers.Constant(0.1),
    )(pooled)
    model = keras.Model(inputs, {"block1_conv2": first, "block3_conv3": second})
    model.trainable = False
    return model


def numpy_gram(features):
    features = np.asarray(features, np.float64)
    batch, height, width, channels = features.shape
    flat = features.reshape(batch, height * width, channels)
    return np.einsum("bnc,bnd->bcd", flat, flat) / (height * width)


def numpy_features(network, images):
    return {name: np.asarray(value, np.float64) for name, value in network(images).items()}


@pytest.fixture(scope="module")
def network():
    return tiny_loss_network()


@pytest.fixture(scope="module")
def batch():
    rng = np.random.default_rng(0)
    content = rng.random((3, 8, 8, 3), dtype=np.float32)
    stylized = rng.random((3, 8, 8, 3), dtype=np.float32)
    styles = [rng.random((8, 8, 3), dtype=np.float32), rng.random((10, 6, 3), dtype=np.float32)]
    return content, stylized, styles, np.array([1, 0, 1])


def test_gram_matrix_matches_numpy():
    features = np.random.default_rng(1).normal(size=(2, 3, 5, 4)).astype(np.float32)
    gram = gram_matrix(features)
    assert ops.convert_to_numpy(gram).dtype == np.float32
    np.testing.assert_allclose(ops.convert_to_numpy(gram), numpy_gram(features), rtol=1e-5)
    # symmetric, (B, C, C)
    assert tuple(gram.shape) == (2, 4, 4)
    np.testing.assert_allclose(ops.convert_to_numpy(gram), np.swapaxes(numpy_gram(features), 1, 2),
                               rtol=1e-5)


def test_gram_matrix_of_bfloat16_is_float32():
    features = np.random.default_rng(2).random((1, 4, 4, 3)).astype(np.float32)
    gram = gram_matrix(ops.cast(features, "bfloat16"))
    assert keras.backend.standardize_dtype(gram.dtype) == "float32"
    # Each feature rounds to bfloat16 by up to 2^-9 (0.2%), so each product by up to 0.4%,
    # and a sum of positive products (features in [0, 1)) by no more: 2% is 5x that.
    np.testing.assert_allclose(ops.convert_to_numpy(gram), numpy_gram(features), rtol=2e-2)


def test_total_variation_matches_numpy():
    images = np.random.default_rng(3).random((2, 5, 6, 3)).astype(np.float32)
    expected = (np.mean((images[:, 1:] - images[:, :-1]) ** 2)
                + np.mean((images[:, :, 1:] - images[:, :, :-1]) ** 2))
    np.testing.assert_allclose(float(losses.total_variation(images)), expected, rtol=1e-5)


def test_compute_style_grams_per_image_any_size(network, batch):
    _, _, styles, _ = batch
    grams = compute_style_grams(network, styles, STYLE_LAYERS)
    assert set(grams) == set(STYLE_LAYERS)
    assert grams["block1_conv2"].shape == (2, 4, 4)
    assert grams["block3_conv3"].shape == (2, 6, 6)
    for index, image in enumerate(styles):
        features = numpy_features(network, image[None])
        for layer in STYLE_LAYERS:
            np.testing.assert_allclose(grams[layer][index], numpy_gram(features[layer])[0],
                                       rtol=1e-4, atol=1e-6)


def vgg_like_network(first_stride=1):
    """Caffe preprocessing, then convolutions and poolings as in VGG-16 (random weights)."""
    from stylecbn.perceptual.vgg import CaffePreprocessing

    inputs = keras.Input((None, None, 3))
    x = CaffePreprocessing()(inputs)
    outputs = {}
    for i, name in enumerate(("block1_conv2", "block2_conv2", "block3_conv3")):
        if i:
            x = keras.layers.MaxPooling2D(2)(x)
        x = keras.layers.Conv2D(
            5, 3, strides=first_stride if i == 0 else 1, padding="same", activation="relu",
            name=name, kernel_initializer=keras.initializers.RandomNormal(0, 0.01, seed=i),
            bias_initializer=keras.initializers.Constant(0.5),
        )(x)
        outputs[name] = x
    model = keras.Model(inputs, outputs)
    model.trainable = False
    return model


@pytest.mark.parametrize("first_stride", [1, 2])
def test_style_grams_of_padded_canvases_equal_each_images_own(first_stride):
    """Odd sizes (the poolings floor them) padded to 64 px canvases, zeroed layer by layer,
    against the network run on each image alone; a strided convolution is not maskable and
    runs each image at its own size."""
    network = vgg_like_network(first_stride)
    assert (losses._masked_gram_model(network, STYLE_LAYERS) is None) == (first_stride != 1)
    rng = np.random.default_rng(4)
    styles = [rng.random(shape, dtype=np.float32) for shape in ((37, 53, 3), (64, 21, 3))]
    grams = compute_style_grams(network, styles, ("block1_conv2", "block2_conv2", "block3_conv3"))
    for index, image in enumerate(styles):
        features = numpy_features(network, image[None])
        for layer, gram in grams.items():
            # The same sums of products in another order (other tile sizes): float32 rounding,
            # relative 1e-6 per layer over three layers, far inside 1e-4. A padding that leaked
            # into the valid pixels (biases of 0.5 outside the image) changes them by > 1%.
            np.testing.assert_allclose(gram[index], numpy_gram(features[layer])[0], rtol=1e-4)


def test_compute_style_grams_errors(network):
    with pytest.raises(ConfigError, match="at least one style image"):
        compute_style_grams(network, [], STYLE_LAYERS)
    with pytest.raises(ImageError, match=r"style image 0 must be an \(H, W, 3\) array"):
        compute_style_grams(network, [np.zeros((8, 8), np.float32)], STYLE_LAYERS)
    with pytest.raises(ConfigError, match="does not output layer"):
        compute_style_grams(network, [np.zeros((8, 8, 3), np.float32)], ("block4_conv3",))


def numpy_loss(network, weights, grams, coefficients, content, stylized, labels):
    """Reference implementation of every named term."""
    stylized_features = numpy_features(network, stylized)
    content_features = numpy_features(network, content)
    terms = {}
    layer = weights.content_layer
    terms[f"content_loss/{layer}"] = weights.content * np.mean(
        (stylized_features[layer] - content_features[layer]) ** 2
    )
    style_total = 0.0
    for layer in weights.style_layers:
        gram = numpy_gram(stylized_features[layer])
        per_sample = np.array([
            coefficients[label] * np.mean((gram[i] - grams[layer][label]) ** 2)
            for i, label in enumerate(labels)
        ])
        multiplier = (1.0 if weights.style_layer_weights is None
                      else weights.style_layer_weights[weights.style_layers.index(layer)])
        terms[f"style_loss/{layer}"] = weights.style * multiplier * per_sample.mean()
        style_total += terms[f"style_loss/{layer}"]
    tv = (np.mean((stylized[:, 1:] - stylized[:, :-1]) ** 2)
          + np.mean((stylized[:, :, 1:] - stylized[:, :, :-1]) ** 2))
    terms["total_variation_loss"] = weights.total_variation * tv
    terms["content_loss"] = terms[f"content_loss/{layer}"]
    terms["style_loss"] = style_total
    terms["total_loss"] = terms["content_loss"] + style_total + terms["total_variation_loss"]
    return terms


@pytest.mark.parametrize("layer_weights", [None, (2.0, 0.25)])
def test_every_term_matches_numpy_reference(network, batch, layer_weights):
    content, stylized, styles, labels = batch
    weights = LossWeights(content=1.5, style=0.7, total_variation=0.3,
                          content_layer=CONTENT_LAYER, style_layers=STYLE_LAYERS,
                          style_layer_weights=layer_weights)
    grams = compute_style_grams(network, styles, STYLE_LAYERS)
    coefficients = np.array([1.0, 2.5])
    loss = PerceptualLoss(network, weights, grams, coefficients)
    total, terms = loss(content, stylized, labels)

    expected = numpy_loss(network, weights, grams, coefficients, content, stylized, labels)
    assert list(terms) == [
        "content_loss/block3_conv3", "style_loss/block1_conv2", "style_loss/block3_conv3",
        "total_variation_loss", "content_loss", "style_loss", "total_loss",
    ]
    for name, value in expected.items():
        assert value > 0, name
        np.testing.assert_allclose(float(terms[name]), value, rtol=1e-4, err_msg=name)
    np.testing.assert_allclose(float(total), expected["total_loss"], rtol=1e-4)


def test_style_coefficient_is_applied_per_label(network, batch):
    content, stylized, styles, _ = batch
    weights = LossWeights(content_layer=CONTENT_LAYER, style_layers=STYLE_LAYERS, style=1.0)
    grams = compute_style_grams(network, styles, STYLE_LAYERS)
    labels = np.array([0, 1, 1])

    def style_loss(coefficients):
        return float(PerceptualLoss(network, weights, grams, coefficients)(
            content, stylized, labels)[1]["style_loss"])

    only_style0, only_style1 = style_loss([1.0, 0.0]), style_loss([0.0, 1.0])
    assert only_style0 > 0 and only_style1 > 0
    np.testing.assert_allclose(style_loss([1.0, 1.0]), only_style0 + only_style1, rtol=1e-5)
    np.testing.assert_allclose(style_loss([2.0, 3.0]), 2 * only_style0 + 3 * only_style1,
                               rtol=1e-5)
    # labels of shape (B, 1) (as a Keras data pipeline may give them) mean the same
    column = PerceptualLoss(network, weights, grams, [2.0, 3.0])(
        content, stylized, labels[:, None])[1]["style_loss"]
    np.testing.assert_allclose(float(column), 2 * only_style0 + 3 * only_style1, rtol=1e-5)


def test_stylized_equal_to_style_image_has_zero_style_loss(network, batch):
    content, _, styles, _ = batch
    weights = LossWeights(content_layer=CONTENT_LAYER, style_layers=STYLE_LAYERS)
    grams = compute_style_grams(network, styles[:1], STYLE_LAYERS)
    _, terms = PerceptualLoss(network, weights, grams, [1.0])(
        content[:1], styles[0][None], np.array([0]))
    assert float(terms["style_loss"]) < 1e-6 * float(np.abs(grams["block1_conv2"]).max())


def test_bfloat16_inputs_and_network_give_float32_losses(batch):
    content, stylized, styles, labels = batch
    weights = LossWeights(content_layer=CONTENT_LAYER, style_layers=STYLE_LAYERS,
                          total_variation=0.1)
    reference_network = tiny_loss_network()
    grams = compute_style_grams(reference_network, styles, STYLE_LAYERS)
    _, reference = PerceptualLoss(reference_network, weights, grams, [1.0, 1.0])(
        content, stylized, labels)

    mixed_network = tiny_loss_network(dtype="mixed_bfloat16")
    mixed_network.set_weights(reference_network.get_weights())
    _, terms = PerceptualLoss(mixed_network, weights, grams, [1.0, 1.0])(
        ops.cast(content, "bfloat16"), ops.cast(stylized, "bfloat16"), labels)
    for name, value in terms.items():
        assert keras.backend.standardize_dtype(value.dtype) == "float32", name
        # bfloat16 rounds inputs and features by up to 2^-9 (0.2%) each; squared differences
        # and Gram products double that, sums of many terms average it out: measured at most
        # 0.9% over six input draws. 10% is far above rounding, far below a wrong loss.
        np.testing.assert_allclose(float(value), float(reference[name]), rtol=0.1, err_msg=name)


def test_loss_runs_compiled_with_unknown_shapes(network, batch):
    """The trainer calls the loss inside a compiled step (tf.function or jax.jit)."""
    content, stylized, styles, labels = batch
    weights = LossWeights(content_layer=CONTENT_LAYER, style_layers=STYLE_LAYERS)
    loss = PerceptualLoss(network, weights, compute_style_grams(network, styles, STYLE_LAYERS),
                          [1.0, 1.0])
    eager = float(loss(content, stylized, labels)[0])
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        compiled = tf.function(lambda c, s, l: loss(c, s, l)[0], input_signature=[
            tf.TensorSpec((None, None, None, 3)), tf.TensorSpec((None, None, None, 3)),
            tf.TensorSpec((None,), tf.int32)])
    elif backend == "jax":
        import jax

        compiled = jax.jit(lambda c, s, l: loss(c, s, l)[0])
    else:
        pytest.skip(f"no compiled check for backend {backend}")
    np.testing.assert_allclose(float(compiled(content, stylized, labels.astype(np.int32))), eager,
                               rtol=1e-5)


def test_loss_weights_defaults_and_validation():
    weights = LossWeights()
    assert weights.content == 1.0
    assert weights.style == losses.DEFAULT_STYLE_WEIGHT == 1e-3
    assert weights.total_variation == 0.0
    assert weights.content_layer == "block3_conv3"
    assert weights.style_layers == ("block1_conv2", "block2_conv2", "block3_conv3", "block4_conv3")
    assert weights.layers == weights.style_layers
    # lists come back from configuration files
    assert LossWeights(style_layers=["block1_conv2"]).style_layers == ("block1_conv2",)
    assert LossWeights(style=1).style == 1.0
    for bad in ({"style": -1.0}, {"content": float("nan")}, {"total_variation": float("inf")},
                {"style": "1e-3"}, {"content": True}, {"style_layers": ()}):
        with pytest.raises(ConfigError):
            LossWeights(**bad)


def test_per_layer_style_weights():
    layers = ("block1_conv2", "block2_conv2")
    weights = LossWeights(style=0.5, style_layers=layers, style_layer_weights=[1, 4])
    assert weights.style_layer_weights == (1.0, 4.0)
    assert weights.layer_style_weights() == {"block1_conv2": 0.5, "block2_conv2": 2.0}
    # a mapping names the layers; its order does not matter
    mapping = LossWeights(style=0.5, style_layers=layers,
                          style_layer_weights={"block2_conv2": 4, "block1_conv2": 1})
    assert mapping.style_layer_weights == (1.0, 4.0)
    assert LossWeights(style=0.5, style_layers=layers).layer_style_weights() == {
        "block1_conv2": 0.5, "block2_conv2": 0.5}
    bad = [([1.0], "has 1 values for 2 style layers"),
           ([1.0, -2.0], r"style_layer_weights\[block2_conv2\]"),
           ([1.0, float("nan")], r"style_layer_weights\[block2_conv2\]"),
           ("1,2", "must be a list of numbers"),
           ({"block1_conv2": 1.0}, "missing: block2_conv2"),
           ({"block1_conv2": 1, "block2_conv2": 1, "block9_conv9": 1}, "unknown: block9_conv9")]
    for value, message in bad:
        with pytest.raises(ConfigError, match=message):
            LossWeights(style_layers=layers, style_layer_weights=value)


def test_recorded_weights_of_older_files_weigh_every_layer_the_same():
    layers = ["block1_conv2", "block2_conv2"]
    old = {"loss_weights": {"content": 1.0, "style": 0.002, "total_variation": 0.0,
                            "content_layer": "block2_conv2", "style_layers": layers}}
    weights = LossWeights.recorded(old)
    assert weights.style_layer_weights is None
    assert weights.layer_style_weights() == {"block1_conv2": 0.002, "block2_conv2": 0.002}
    new = LossWeights(style=0.002, style_layers=layers, style_layer_weights=[1.0, 8.0])
    # what a model file records (JSON) reads back the same
    import json

    again = LossWeights.recorded({"loss_weights": json.loads(json.dumps(new.recordable()))})
    assert again == new


def test_perceptual_loss_configuration_errors(network, batch):
    _, _, styles, _ = batch
    weights = LossWeights(content_layer=CONTENT_LAYER, style_layers=STYLE_LAYERS)
    grams = compute_style_grams(network, styles, STYLE_LAYERS)

    with pytest.raises(ConfigError, match="must be a LossWeights"):
        PerceptualLoss(network, {"style": 1.0}, grams, [1.0, 1.0])
    single = keras.Model(network.input, network.output["block1_conv2"])
    with pytest.raises(ConfigError, match="must output a dict"):
        PerceptualLoss(single, weights, grams, [1.0, 1.0])
    deep = LossWeights(style_layers=("block1_conv2", "block4_conv3"), content_layer=CONTENT_LAYER)
    with pytest.raises(ConfigError, match="does not output layer.*block4_conv3"):
        PerceptualLoss(network, deep, grams, [1.0, 1.0])
    with pytest.raises(ConfigError, match="style_grams lack .*block3_conv3"):
        PerceptualLoss(network, weights, {"block1_conv2": grams["block1_conv2"]}, [1.0, 1.0])
    with pytest.raises(ConfigError, match="holds 2 styles but there are 3"):
        PerceptualLoss(network, weights, grams, [1.0, 1.0, 1.0])
    with pytest.raises(ConfigError, match="finite and >= 0"):
        PerceptualLoss(network, weights, grams, [1.0, -1.0])
    with pytest.raises(ConfigError, match=r"shape \(styles, C, C\)"):
        PerceptualLoss(network, weights, {**grams, "block1_conv2": np.zeros((2, 4, 3))}, [1, 1])
