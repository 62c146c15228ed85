"""Tests of stylecbn.training.style_targets: a run's Gram matrices computed once and read on a resume."""

import numpy as np
import pytest
from helpers import make_images
from test_train import data, fake_loss_network, tiny_config  # noqa: F401  (data: a fixture)

from stylecbn.training.styles import load_style_image, load_styles_folder
from stylecbn.errors import StylecbnWarning
from stylecbn.perceptual.losses import compute_style_grams
from stylecbn.training.style_targets import GRAMS_FILE, run_style_grams
from stylecbn.training.run import train

pytestmark = pytest.mark.usefixtures("plenty_of_memory")  # see conftest.py
LAYERS = ("block1_conv2", "block2_conv2")


@pytest.fixture
def styles(tmp_path):
    folder = make_images(tmp_path / "styles", 2, (36, 44), seed=5, prefix="style")
    specs = load_styles_folder(folder)
    for spec in specs:
        spec.size = 40  # small: the fake loss network is fast, the images still resized
    return specs


def images_of(specs):
    return lambda: [load_style_image(spec) for spec in specs]


def never():
    raise AssertionError("the Gram matrices were computed again")


@pytest.fixture
def computed(monkeypatch):
    """What `compute_style_grams` returned to `run_style_grams`, call by call: the values a
    later read must give back bit for bit (a second computation could differ in rounding)."""
    results = []

    def spy(*args, **kwargs):
        results.append(compute_style_grams(*args, **kwargs))
        return results[-1]

    monkeypatch.setattr("stylecbn.training.style_targets.compute_style_grams", spy)
    return results


def assert_same(grams, expected, layers):
    assert sorted(grams) == sorted(layers)
    for layer in layers:
        assert grams[layer].dtype == np.float32
        np.testing.assert_array_equal(grams[layer], expected[layer])


def test_computed_once_then_read_back_exactly(tmp_path, styles, computed):
    network = fake_loss_network()
    grams, reused = run_style_grams(tmp_path, styles, images_of(styles), network, LAYERS)
    assert not reused and (tmp_path / GRAMS_FILE).is_file()
    assert len(computed) == 1 and grams is computed[0]
    assert all(grams[layer].shape[0] == len(styles) for layer in LAYERS)
    again, reused = run_style_grams(tmp_path, styles, never, network, LAYERS)
    assert reused
    assert_same(again, computed[0], LAYERS)


def edit_saved(path, change):
    """Rewrite the saved file with `change(array)` applied to each matrix, fingerprint kept."""
    with np.load(path) as saved:
        arrays = {key: saved[key] for key in saved.files}
    for key in arrays:
        if key.startswith("layer/"):
            arrays[key] = change(arrays[key])
    with open(path, "wb") as handle:
        np.savez(handle, **arrays)


@pytest.mark.parametrize("change", ["painting", "size", "weights", "layers", "damaged",
                                    "nan", "5x5"])
def test_anything_they_depend_on_computes_them_again(tmp_path, styles, computed, change):
    network = fake_loss_network()
    run_style_grams(tmp_path, styles, images_of(styles), network, LAYERS)
    layers = LAYERS
    if change == "painting":  # the same name, other pixels
        make_images(styles[0].path.parent, 1, (36, 44), seed=9, prefix="style")
    elif change == "size":
        styles[1].size = 32
    elif change == "weights":
        network = fake_loss_network(seed=7)
    elif change == "layers":
        layers = ("block1_conv2",)
    elif change == "damaged":
        (tmp_path / GRAMS_FILE).write_bytes(b"PK\x03\x04 not a zip file")
    elif change == "nan":  # a matching fingerprint over values that would train NaN
        edit_saved(tmp_path / GRAMS_FILE, lambda grams: np.full_like(grams, np.nan))
    else:  # a matching fingerprint over matrices of another size
        edit_saved(tmp_path / GRAMS_FILE, lambda grams: np.zeros((len(grams), 5, 5), np.float32))
    grams, reused = run_style_grams(tmp_path, styles, images_of(styles), network, layers)
    assert not reused and len(computed) == 2 and grams is computed[1]
    # and the file now holds the new ones
    again, reused = run_style_grams(tmp_path, styles, never, network, layers)
    assert reused
    assert_same(again, computed[1], layers)


def test_resumed_training_reads_them_and_says_so(data, tmp_path):  # noqa: F811
    lines = []
    config = tiny_config(data, tmp_path, steps=2)
    train(config, loss_network=fake_loss_network(), log=lines.append)
    assert any(line.startswith("start-up: Gram matrices: 2 style(s) in") for line in lines)
    lines.clear()
    config = tiny_config(data, tmp_path, steps=3, resume=True)
    train(config, loss_network=fake_loss_network(), log=lines.append)
    assert any(line.startswith(f"start-up: Gram matrices: 2 style(s), read from {GRAMS_FILE} in")
               for line in lines)


def test_a_file_that_cannot_be_written_warns_and_the_run_goes_on(tmp_path, styles, monkeypatch):
    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("stylecbn.training.style_targets.np.savez", full_disk)
    network = fake_loss_network()
    run = tmp_path / "run"
    run.mkdir()
    with pytest.warns(StylecbnWarning, match=r"could not keep the Gram matrices in .*"
                      r"style_grams\.npz \(No space left on device\); a resumed start"):
        grams, reused = run_style_grams(run, styles, images_of(styles), network, LAYERS)
    assert not reused and sorted(grams) == sorted(LAYERS)
    assert list(run.iterdir()) == []  # no partial file left behind
