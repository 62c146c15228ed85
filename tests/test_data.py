"""Tests of stylecbn.training.styles: the styles folder, the content-photo pipeline, resized copies."""

import io
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from stylecbn.training.styles import StyleSpec, load_style_image, load_styles_folder
from stylecbn.training.photos import ContentPhotos, write_resized_photos
from stylecbn.errors import ConfigError, DataError, StylecbnWarning
from stylecbn.media.reading import image_size

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def save_image(path, size=(40, 32), color=(200, 40, 90), array=None, **save_options):
    """Write a small image (a solid colour unless `array` is given) and return its path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if array is None:
        image = Image.new("RGB", size, color)
    else:
        image = Image.fromarray(np.asarray(array, dtype=np.uint8))
    image.save(path, **save_options)
    return path


def jpeg_bytes(size=(64, 48)):
    noise = np.random.default_rng(0).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(noise).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


@pytest.fixture
def no_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


# ----------------------------------------------------------------------------- styles folder


def test_styles_sorted_by_file_name_with_defaults(tmp_path, no_warnings):
    for name in ("b_mosaic.jpg", "a_waves.png", "c_glass.WEBP"):
        save_image(tmp_path / name)
    (tmp_path / "sub").mkdir()
    save_image(tmp_path / "sub" / "0_nested.png")  # not recursive
    (tmp_path / ".DS_Store").write_bytes(b"\0")  # hidden files are not styles, silently

    specs = load_styles_folder(tmp_path)

    assert [spec.name for spec in specs] == ["a_waves", "b_mosaic", "c_glass"]
    assert [spec.path for spec in specs] == [
        tmp_path / "a_waves.png", tmp_path / "b_mosaic.jpg", tmp_path / "c_glass.WEBP"
    ]
    assert all(spec.credit == "" and spec.coefficient == 1.0 and spec.size == 512 for spec in specs)


def test_styles_other_files_are_ignored_quietly(tmp_path, no_warnings):
    save_image(tmp_path / "a.png")
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "make_styles.py").write_text("print('draws the styles')\n")
    assert [spec.name for spec in load_styles_folder(tmp_path)] == ["a"]


def test_styles_image_under_another_suffix_is_skipped_with_a_warning(tmp_path):
    save_image(tmp_path / "a.png")
    save_image(tmp_path / "b.jfif", format="JPEG")
    with pytest.warns(StylecbnWarning, match=r"b\.jfif .*it is an image, but its suffix \.jfif"):
        specs = load_styles_folder(tmp_path)
    assert [spec.name for spec in specs] == ["a"]


def test_the_repository_styles_folder_loads_without_warnings(no_warnings):
    specs = load_styles_folder(Path(__file__).resolve().parents[1] / "styles")
    assert len(specs) == 6  # make_styles.py and styles.toml beside the images: no warning


MANIFEST_TOML = """
[[style]]
file = "02_mosaic.png"
name = "mosaic"
credit = "Drawn by styles/make_styles.py"
weight = 2.5
size = 256

[[style]]
file = "01_waves.png"
weight = 1
"""


def test_styles_toml_manifest(tmp_path, no_warnings):
    for name in ("01_waves.png", "02_mosaic.png", "03_dots.png"):
        save_image(tmp_path / name)
    (tmp_path / "styles.toml").write_text(MANIFEST_TOML)

    specs = load_styles_folder(tmp_path)

    # Order is always the sorted file names, not the manifest's order.
    assert [spec.name for spec in specs] == ["01_waves", "mosaic", "03_dots"]
    mosaic = specs[1]
    assert mosaic.credit == "Drawn by styles/make_styles.py"
    assert mosaic.coefficient == 2.5 and mosaic.size == 256
    assert isinstance(specs[0].coefficient, float) and specs[0].coefficient == 1.0
    assert specs[2] == StyleSpec("03_dots", tmp_path / "03_dots.png")


def test_styles_json_manifest(tmp_path, no_warnings):
    save_image(tmp_path / "a.png")
    save_image(tmp_path / "b.png")
    manifest = {"style": [{"file": "b.png", "name": "bee", "credit": "me", "size": 64}]}
    (tmp_path / "styles.json").write_text(json.dumps(manifest))

    specs = load_styles_folder(tmp_path)

    assert [(s.name, s.credit, s.size) for s in specs] == [("a", "", 512), ("bee", "me", 64)]


@pytest.mark.parametrize(
    "entry, message",
    [
        ('file = "gone.png"', "gone.png.*does not exist"),
        ('file = "a.png"\nweight = 0', "weight.*> 0"),
        ('file = "a.png"\nweight = -1.5', "weight.*> 0"),
        ('file = "a.png"\nweight = "heavy"', "weight"),
        ('file = "a.png"\nweight = true', "weight"),
        ('file = "a.png"\nweight = nan', "weight"),
        ('file = "a.png"\nsize = 8', "size.*>= 16"),
        ('file = "a.png"\nsize = 256.0', "`size` must be an integer >= 16"),
        ('file = "a.png"\ncolour = "red"', "unknown key.*colour"),
        ('file = "a.png"\nname = ""', "name"),
        ('file = "a.png"\ncredit = 3', "credit"),
        ('name = "no file"', "'file'.*required"),
        ('file = "../a.png"', "file name directly in"),
        ('file = "readme.txt"', "not an image"),
        ('file = "a.png"\n[[style]]\nfile = "a.png"', "listed twice"),
    ],
)
def test_styles_manifest_entry_errors(tmp_path, entry, message):
    save_image(tmp_path / "a.png")
    (tmp_path / "readme.txt").write_text("x")
    (tmp_path / "styles.toml").write_text(f"[[style]]\n{entry}\n")
    with pytest.raises(DataError, match=message) as error:
        load_styles_folder(tmp_path)
    assert "styles.toml" in str(error.value)


@pytest.mark.parametrize(
    "file_name, text, message",
    [
        ("styles.toml", "[[style]\nfile = 'a.png'", "not valid toml"),
        ("styles.json", '{"style": [', "not valid json"),
        ("styles.toml", "[[styles]]\nfile = 'a.png'", "only a list of styles under the key"),
        ("styles.json", '[{"file": "a.png"}]', "only a list of styles"),
        ("styles.json", '{"style": {"file": "a.png"}}', "must be a list"),
        ("styles.json", '{"style": ["a.png"]}', "expected a table"),
    ],
)
def test_styles_manifest_file_errors(tmp_path, file_name, text, message):
    save_image(tmp_path / "a.png")
    (tmp_path / file_name).write_text(text)
    with pytest.raises(DataError, match=message) as error:
        load_styles_folder(tmp_path)
    assert file_name in str(error.value)


def test_styles_both_manifests_is_an_error(tmp_path):
    save_image(tmp_path / "a.png")
    (tmp_path / "styles.toml").write_text("")
    (tmp_path / "styles.json").write_text("{}")
    with pytest.raises(DataError, match="both styles.toml and styles.json"):
        load_styles_folder(tmp_path)


def test_styles_missing_folder(tmp_path):
    with pytest.raises(DataError, match=r"nope.*does not exist"):
        load_styles_folder(tmp_path / "nope")


def test_styles_folder_is_a_file(tmp_path):
    path = save_image(tmp_path / "a.png")
    with pytest.raises(DataError, match="is not a folder"):
        load_styles_folder(path)


def test_styles_empty_folder(tmp_path):
    with pytest.raises(DataError, match="holds no images"):
        load_styles_folder(tmp_path)


def test_styles_folder_with_only_other_files(tmp_path, no_warnings):
    (tmp_path / "styles.toml").write_text("")
    (tmp_path / "a.txt").write_text("")
    with pytest.raises(DataError, match="holds no images"):
        load_styles_folder(tmp_path)


def test_styles_duplicate_names_from_stems(tmp_path):
    save_image(tmp_path / "waves.jpg")
    save_image(tmp_path / "waves.png")
    with pytest.raises(DataError, match=r"waves.jpg and waves.png.*same name 'waves'"):
        load_styles_folder(tmp_path)


@pytest.mark.parametrize("name", ["evil\x1b]0;pwned\x07", "two\nlines", "tab\there",
                                  "bell\x07", "\u202egnp.exe"])
def test_styles_names_with_control_characters_are_refused(tmp_path, name):
    # They would reach the terminal through `stylecbn styles` and every error that names them.
    save_image(tmp_path / "a.png")
    (tmp_path / "styles.toml").write_text(f'[[style]]\nfile = "a.png"\nname = {json.dumps(name)}\n')
    with pytest.raises(DataError, match=r"a\.png .*control character") as error:
        load_styles_folder(tmp_path)
    assert all(char.isprintable() for char in str(error.value))


def test_styles_duplicate_names_from_manifest(tmp_path):
    save_image(tmp_path / "a.png")
    save_image(tmp_path / "b.png")
    (tmp_path / "styles.toml").write_text('[[style]]\nfile = "b.png"\nname = "a"\n')
    with pytest.raises(DataError, match="same name 'a'"):
        load_styles_folder(tmp_path)


@pytest.mark.parametrize(
    "content",
    [b"this is not an image", b"", "truncated jpeg", "truncated png"],
    ids=["garbage", "empty", "truncated-jpeg", "truncated-png"],
)
def test_styles_corrupt_image_is_an_error_naming_it(tmp_path, content):
    save_image(tmp_path / "a_good.png")
    if content == "truncated jpeg":
        name, content = "b_bad.jpg", jpeg_bytes()[:600]
    elif content == "truncated png":
        buffer = io.BytesIO()
        Image.fromarray(np.random.default_rng(1).integers(0, 256, (40, 40, 3), np.uint8)).save(
            buffer, format="PNG")
        name, content = "b_bad.png", buffer.getvalue()[:-400]
    else:
        name = "b_bad.png"
    (tmp_path / name).write_bytes(content)
    with pytest.raises(DataError, match=name):
        load_styles_folder(tmp_path)


@pytest.mark.parametrize("size, expected", [(32, (16, 32)), (100, (50, 100))])
def test_load_style_image_longer_side_is_size(tmp_path, size, expected):
    path = save_image(tmp_path / "a.png", size=(60, 30), color=(255, 0, 51))
    image = load_style_image(StyleSpec("a", path, size=size))
    assert image.dtype == np.float32
    assert image.shape == (*expected, 3)
    np.testing.assert_allclose(image[5, 5], [1.0, 0.0, 0.2], atol=1e-6)


def test_load_style_image_applies_exif_orientation(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees: the stored 40x20 picture is 20 wide, 40 tall
    path = save_image(tmp_path / "a.jpg", size=(40, 20), exif=exif)
    image = load_style_image(StyleSpec("a", path, size=40))
    assert image.shape == (40, 20, 3)


def test_load_style_image_missing_file(tmp_path):
    with pytest.raises(DataError, match="gone.png"):
        load_style_image(StyleSpec("gone", tmp_path / "gone.png"))


# ----------------------------------------------------------------------------- content photos


def gray_photos(folder, values, size=(32, 32)):
    """One solid-gray photo per value; returns {value: path}."""
    return {value: save_image(folder / f"photo_{value:03d}.png", size=size, color=(value,) * 3)
            for value in values}


def crop_values(batch):
    """The gray value (0-255) of each crop of solid-gray crops: uint8 batches or float previews."""
    scale = 1 if batch.dtype == np.uint8 else 255
    return {int(round(float(value) * scale)) for value in batch[:, 0, 0, 0]}


def test_content_recursive_scan_case_insensitive(tmp_path, no_warnings):
    save_image(tmp_path / "a.JPG", size=(48, 40))
    save_image(tmp_path / "sub" / "b.Png", size=(40, 48))
    save_image(tmp_path / "sub" / "deeper" / "c.webp")
    save_image(tmp_path / "sub" / "d.tiff")
    (tmp_path / "sub" / "notes.txt").write_text("not a photo")

    photos = ContentPhotos(tmp_path, crop=32, holdout=1)

    assert len(photos) == 3
    assert len(photos.holdout_paths) == 1
    assert sorted(photos.paths + photos.holdout_paths) == sorted(
        [tmp_path / "a.JPG", tmp_path / "sub" / "b.Png",
         tmp_path / "sub" / "deeper" / "c.webp", tmp_path / "sub" / "d.tiff"])


def test_content_resize_shorter_side_and_nbytes(tmp_path):
    save_image(tmp_path / "wide.png", size=(80, 40))
    save_image(tmp_path / "tall.png", size=(33, 40))  # above the crop, below 36: enlarged
    photos = ContentPhotos(tmp_path, crop=32, holdout=0)
    assert photos.resize == 36  # round(32 * 1.125)
    # wide: 40x80 -> 36x72; tall: 33x40 -> 36x44 (rounded)
    assert photos.nbytes == (36 * 72 + 36 * 44) * 3 * 2  # with the mirror images


def test_photos_smaller_than_the_crop_are_skipped(tmp_path):
    save_image(tmp_path / "big.png", size=(80, 40))
    save_image(tmp_path / "small.png", size=(20, 24))
    with pytest.warns(StylecbnWarning, match=r"small\.png: it is 20x24 px, smaller than the 32"):
        photos = ContentPhotos(tmp_path, crop=32, holdout=0)
    assert photos.paths == [tmp_path / "big.png"]


def test_crop_larger_than_every_photo_is_refused_before_decoding(tmp_path, monkeypatch):
    # The case: --crop-size 4096 on small photos enlarged them all and ran out of
    # memory. Now the headers are enough to refuse.
    save_image(tmp_path / "a.png", size=(640, 480))
    save_image(tmp_path / "b.png", size=(300, 200))
    monkeypatch.setattr("stylecbn.training.styles.read_image", None)  # nothing may be decoded
    with pytest.warns(StylecbnWarning), pytest.raises(DataError) as error:
        ContentPhotos(tmp_path, crop=4096)
    assert str(error.value) == (
        f"`crop` 4096 is larger than every photo in {tmp_path} (the largest shorter side "
        "is 480 px); use a `crop` of 480 or less, or larger photos"
    )


def test_photo_cache_over_its_memory_budget_is_refused_before_decoding(tmp_path, monkeypatch):
    for name in ("a.png", "b.png"):
        save_image(tmp_path / name, size=(640, 480))
    monkeypatch.setattr("stylecbn.training.styles.read_image", None)  # nothing may be decoded
    # 480x640 -> 288x384 at crop 256: 2 photos x 110,592 px x 3 bytes x 2 (mirror) = 1.3 MB
    with pytest.raises(DataError) as error:
        ContentPhotos(tmp_path, crop=256, max_bytes=1_000_000)
    assert str(error.value) == (
        f"the 2 content photos of {tmp_path}, resized to 288 px on their shorter side for 256 px "
        "crops, need about 1.3 MB of memory, more than the 1.0 MB left for them; use a smaller "
        "`crop` or fewer photos"
    )
    monkeypatch.undo()
    assert ContentPhotos(tmp_path, crop=256, holdout=0, max_bytes=1_400_000).nbytes == 1_327_104


def test_content_resize_below_crop_is_raised_to_crop(tmp_path):
    save_image(tmp_path / "a.png", size=(64, 64))
    photos = ContentPhotos(tmp_path, crop=32, resize=20, holdout=0)
    assert photos.resize == 32
    assert photos.nbytes == 32 * 32 * 3 * 2
    assert photos.batch(0, 2).shape == (2, 32, 32, 3)


def test_batch_shape_dtype_range(tmp_path):
    noise = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    save_image(tmp_path / "a.png", array=noise)
    save_image(tmp_path / "b.png", array=noise[::-1])
    photos = ContentPhotos(tmp_path, crop=32, holdout=0)
    batch = photos.batch(3, 5)
    assert batch.shape == (5, 32, 32, 3) and batch.dtype == np.uint8
    assert batch.std() > 25  # real pixels, not a constant


def test_batch_is_a_pure_function_of_seed_and_step(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(4):
        save_image(tmp_path / f"{i}.png", array=rng.integers(0, 256, (48, 56, 3), dtype=np.uint8))
    first = ContentPhotos(tmp_path, crop=32, holdout=1, seed=7)
    resumed = ContentPhotos(tmp_path, crop=32, holdout=1, seed=7)  # e.g. a resumed run
    other_seed = ContentPhotos(tmp_path, crop=32, holdout=1, seed=8)

    np.testing.assert_array_equal(first.batch(5, 4), resumed.batch(5, 4))
    resumed.batch(6, 4)  # calling order does not matter
    np.testing.assert_array_equal(first.batch(5, 4), resumed.batch(5, 4))
    assert not np.array_equal(first.batch(5, 4), first.batch(6, 4))
    assert not np.array_equal(first.batch(5, 4), other_seed.batch(5, 4))


def test_batch_flips_horizontally(tmp_path):
    # Crop = photo size, so every crop is the whole photo or its mirror image.
    columns = np.arange(32, dtype=np.uint8) * 8
    gradient = np.broadcast_to(columns[None, :, None], (32, 32, 3))
    save_image(tmp_path / "gradient.png", array=gradient)
    photos = ContentPhotos(tmp_path, crop=32, resize=32, holdout=0)

    batch = photos.batch(0, 64)
    rows = batch[:, 0, :, 0].astype(int)
    forward = np.all(rows == columns, axis=1)
    mirrored = np.all(rows == columns[::-1], axis=1)
    assert np.all(forward | mirrored)
    assert 10 < mirrored.sum() < 54  # about half, with any reasonable random draw


def test_batch_crops_are_windows_of_the_photo_or_its_mirror(tmp_path):
    noise = np.random.default_rng(2).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    save_image(tmp_path / "noise.png", array=noise)
    photos = ContentPhotos(tmp_path, crop=32, resize=48, holdout=0)  # cached as is: 48 high
    windows = np.lib.stride_tricks.sliding_window_view(noise, (32, 32, 3))[..., 0, :, :, :]
    mirrored = windows[:, :, :, ::-1]
    found_plain = found_mirrored = 0
    for crop in photos.batch(9, 24):
        plain = np.all(windows == crop, axis=(2, 3, 4))
        flipped = np.all(mirrored == crop, axis=(2, 3, 4))
        assert plain.sum() + flipped.sum() == 1
        found_plain += int(plain.sum())
        found_mirrored += int(flipped.sum())
    assert found_plain > 0 and found_mirrored > 0


def test_batch_crops_cover_random_positions(tmp_path):
    ramp = np.broadcast_to((np.arange(64) * 3).astype(np.uint8)[:, None, None], (64, 48, 3))
    save_image(tmp_path / "ramp.png", array=ramp)  # 48 wide, 64 tall: row r has value 3r
    photos = ContentPhotos(tmp_path, crop=32, resize=48, holdout=0)
    tops = {int(value) // 3 for value in photos.batch(1, 64)[:, 0, 0, 0]}
    assert min(tops) >= 0 and max(tops) <= 64 - 32
    assert len(tops) > 10


def test_holdout_never_in_training_crops(tmp_path):
    values = list(range(10, 250, 20))  # 12 photos
    by_value = gray_photos(tmp_path, values)
    photos = ContentPhotos(tmp_path, crop=32, holdout=3, seed=4)

    held = {value for value, path in by_value.items() if path in photos.holdout_paths}
    assert len(held) == 3 and len(photos) == 9
    seen = set()
    for step in range(40):
        seen |= crop_values(photos.batch(step, 8))
    assert seen == set(values) - held

    previews = photos.preview_photos(size=24)
    assert previews.shape == (3, 24, 24, 3) and previews.dtype == np.float32
    assert crop_values(previews) == held


def test_holdout_choice_is_deterministic_from_seed(tmp_path):
    gray_photos(tmp_path, range(10, 250, 20))  # 12 photos
    picks = [tuple(ContentPhotos(tmp_path, crop=16, holdout=3, seed=seed).holdout_paths)
             for seed in (0, 0, 1, 2, 3)]
    assert picks[0] == picks[1]
    assert len(set(picks)) > 1


def test_holdout_leaves_most_photos_for_training(tmp_path):
    """At most a quarter of the photos is held out, and the warning says how many: 6 photos
    with --holdout 4 train on 5, not 2; 2 photos keep both (no previews)."""
    gray_photos(tmp_path / "six", range(20, 240, 40))
    with pytest.warns(UserWarning, match=r"6 content photo\(s\) .*holding out 1 for previews "
                                         r"instead of 4, so that at least 3 in 4 stay"):
        photos = ContentPhotos(tmp_path / "six", crop=32, holdout=4)
    assert len(photos) == 5 and len(photos.holdout_paths) == 1
    assert photos.preview_photos(32).shape == (1, 32, 32, 3)

    gray_photos(tmp_path / "two", (50, 150))
    with pytest.warns(UserWarning, match="no previews instead of 4"):
        photos = ContentPhotos(tmp_path / "two", crop=32, holdout=4)
    assert len(photos) == 2 and photos.holdout_paths == []

    none_held = ContentPhotos(tmp_path / "two", crop=32, holdout=0)
    assert len(none_held) == 2
    assert none_held.preview_photos(16).shape == (0, 16, 16, 3)


def test_preview_photos_are_center_crops(tmp_path):
    left_red_right_blue = np.zeros((32, 96, 3), dtype=np.uint8)
    left_red_right_blue[:, :32, 0] = 255
    left_red_right_blue[:, 32:64, 1] = 255  # the center square is green
    left_red_right_blue[:, 64:, 2] = 255
    save_image(tmp_path / "a.png", array=left_red_right_blue)
    for name in ("b.png", "c.png", "d.png"):  # four photos: one may be held out
        save_image(tmp_path / name)
    photos = next(p for p in (ContentPhotos(tmp_path, crop=32, resize=32, holdout=1, seed=seed)
                              for seed in range(50))
                  if p.holdout_paths == [tmp_path / "a.png"])
    preview = photos.preview_photos(size=32)[0]
    np.testing.assert_allclose(preview[8:24, 8:24].mean(axis=(0, 1)), [0, 1, 0], atol=0.02)


def test_labels(tmp_path):
    gray_photos(tmp_path, (10, 20))
    photos = ContentPhotos(tmp_path, crop=16, holdout=0, seed=3)
    labels = photos.labels(5, 64, 7)
    assert labels.dtype == np.int32 and labels.shape == (64,)
    assert labels.min() >= 0 and labels.max() < 7 and len(set(labels.tolist())) == 7
    np.testing.assert_array_equal(labels, ContentPhotos(tmp_path, crop=16, holdout=0, seed=3)
                                  .labels(5, 64, 7))
    assert not np.array_equal(labels, photos.labels(6, 64, 7))
    # Not the crops' stream: the photo draw of batch(5) with the same bound differs.
    crop_stream = np.random.default_rng([3, 5]).integers(0, 7, size=64)
    assert not np.array_equal(labels, crop_stream)


def test_max_photos_takes_evenly_spaced_photos(tmp_path):
    by_value = gray_photos(tmp_path, range(10, 210, 20))  # 10 photos
    photos = ContentPhotos(tmp_path, crop=16, holdout=0, max_photos=4)
    assert photos.paths == [by_value[value] for value in (10, 70, 130, 190)]


def test_unreadable_photos_are_skipped_with_a_warning(tmp_path):
    save_image(tmp_path / "good.png")
    (tmp_path / "broken.jpg").write_bytes(jpeg_bytes()[:500])
    with pytest.warns(UserWarning, match="broken.jpg"):
        photos = ContentPhotos(tmp_path, crop=16, holdout=0)
    assert photos.paths == [tmp_path / "good.png"]


def test_all_photos_unreadable(tmp_path):
    (tmp_path / "a.jpg").write_bytes(b"nope")
    (tmp_path / "b.png").write_bytes(b"")
    with pytest.warns(UserWarning), pytest.raises(DataError, match="none of its 2 photos"):
        ContentPhotos(tmp_path, crop=16)


def test_content_missing_folder(tmp_path):
    with pytest.raises(DataError, match=r"^content folder .*nope does not exist"):
        ContentPhotos(tmp_path / "nope")


def test_content_folder_is_a_file(tmp_path):
    path = save_image(tmp_path / "a.png")
    with pytest.raises(DataError, match="is not a folder"):
        ContentPhotos(path)


def test_content_folder_without_photos(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "notes.txt").write_text("")
    with pytest.raises(DataError, match="holds no photos"):
        ContentPhotos(tmp_path)


@pytest.mark.parametrize(
    "kwargs, message",
    [({"crop": 8}, "crop"), ({"crop": 32.0}, "crop"), ({"resize": 0}, "resize"),
     ({"holdout": -1}, "holdout"), ({"seed": -1}, "seed"), ({"max_photos": 0}, "max_photos")],
)
def test_content_bad_arguments(tmp_path, kwargs, message):
    save_image(tmp_path / "a.png")
    with pytest.raises(ConfigError, match=message):
        ContentPhotos(tmp_path, **kwargs)


def test_batch_and_labels_bad_arguments(tmp_path):
    save_image(tmp_path / "a.png")
    photos = ContentPhotos(tmp_path, crop=16, holdout=0)
    with pytest.raises(ConfigError, match="step"):
        photos.batch(-1, 4)
    with pytest.raises(ConfigError, match="batch_size"):
        photos.batch(0, 0)
    with pytest.raises(ConfigError, match="num_styles"):
        photos.labels(0, 4, 0)
    with pytest.raises(ConfigError, match="size"):
        photos.preview_photos(0)
    with pytest.raises(ConfigError, match="step"):
        photos.batch(1.0, 4)


def test_batch_accepts_numpy_integers(tmp_path):
    # A trainer may hold the step as a NumPy scalar or a 0-d array (e.g. optimizer.iterations).
    gray_photos(tmp_path, (10, 20))
    photos = ContentPhotos(tmp_path, crop=16, holdout=0)
    np.testing.assert_array_equal(photos.batch(np.int64(3), np.int32(2)), photos.batch(3, 2))
    np.testing.assert_array_equal(photos.labels(np.array(3), 2, np.int64(5)),
                                  photos.labels(3, 2, 5))


# ----------------------------------------------------------------------------- resized copies


def test_write_resized_photos(tmp_path, no_warnings):
    src, dst = tmp_path / "src", tmp_path / "dst"
    save_image(src / "big.png", size=(120, 80))
    save_image(src / "big.jpg", size=(80, 120))  # same stem: must not overwrite big.png's copy
    save_image(src / "nested" / "small.webp", size=(30, 20))
    exif = Image.Exif()
    exif[0x0112] = 6
    save_image(src / "rotated.jpg", size=(100, 60), exif=exif)

    count, total_bytes = write_resized_photos(src, dst, size=48, quality=80)

    written = sorted(path for path in dst.rglob("*") if path.is_file())
    assert count == 4 == len(written)
    assert total_bytes == sum(path.stat().st_size for path in written)
    sizes, formats = {}, set()
    for path in written:
        with Image.open(path) as image:
            sizes[path.relative_to(dst).as_posix()] = image.size
            formats.add(image.format)
    assert formats == {"JPEG"}
    assert sizes == {
        "big.jpg": (48, 72),
        "big.png.jpg": (72, 48),
        "nested/small.jpg": (30, 20),  # never upscaled
        "rotated.jpg": (48, 80),  # upright: EXIF orientation applied
    }
    assert ContentPhotos(dst, crop=16, holdout=0).paths == [
        dst / "big.jpg", dst / "big.png.jpg", dst / "nested" / "small.jpg", dst / "rotated.jpg"]


def test_write_resized_photos_skips_unreadable(tmp_path):
    src = tmp_path / "src"
    save_image(src / "good.png")
    (src / "bad.png").write_bytes(b"garbage")
    with pytest.warns(UserWarning, match="bad.png"):
        count, _ = write_resized_photos(src, tmp_path / "dst", size=16)
    assert count == 1
    assert [path.name for path in (tmp_path / "dst").iterdir()] == ["good.jpg"]


def test_write_resized_photos_errors(tmp_path):
    save_image(tmp_path / "src" / "a.png")
    with pytest.raises(DataError, match="does not exist"):
        write_resized_photos(tmp_path / "nope", tmp_path / "dst")
    with pytest.raises(DataError, match="overwrite the originals"):
        write_resized_photos(tmp_path / "src", tmp_path / "src" / ".." / "src")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="holds no photos"):
        write_resized_photos(tmp_path / "empty", tmp_path / "dst")
    with pytest.raises(ConfigError, match="quality"):
        write_resized_photos(tmp_path / "src", tmp_path / "dst", quality=100)
    with pytest.raises(ConfigError, match="size"):
        write_resized_photos(tmp_path / "src", tmp_path / "dst", size=4)
    (tmp_path / "blocker").write_text("a file where the destination folder should be")
    with pytest.raises(DataError, match="cannot write"):
        write_resized_photos(tmp_path / "src", tmp_path / "blocker" / "dst")


# ----------------------------------------------------------------------------- real images


@pytest.mark.slow
def test_real_paintings_and_content_photos():
    paintings, content = SHARED_DATA / "paintings", SHARED_DATA / "content"
    if not (paintings.is_dir() and content.is_dir()):
        pytest.skip(f"real images not found under {SHARED_DATA}")

    specs = load_styles_folder(paintings)
    assert len(specs) == 17
    assert [spec.name for spec in specs] == sorted(path.stem for path in paintings.iterdir())
    assert "vangogh_the_starry_night" in [spec.name for spec in specs]
    starry = load_style_image(specs[[s.name for s in specs].index("vangogh_the_starry_night")])
    assert starry.shape == (406, 512, 3)  # 1280x1014 with the longer side at 512

    with warnings.catch_warnings(record=True) as skipped:
        warnings.simplefilter("always")
        photos = ContentPhotos(content, crop=256, holdout=4, seed=0)
    total = sum(1 for path in content.rglob("*") if path.is_file())
    # Photos under 256 px on their shorter side are skipped (with a warning each).
    small = [path for path in content.rglob("*") if path.is_file()
             and min(image_size(path)) < 256]
    assert len([w for w in skipped if issubclass(w.category, StylecbnWarning)]) == len(small)
    assert len(photos) + len(photos.holdout_paths) == total - len(small)
    assert len(photos.holdout_paths) == 4
    batch = photos.batch(0, 16)
    assert batch.shape == (16, 256, 256, 3) and batch.dtype == np.uint8
    assert 25 < batch.mean() < 230
    assert photos.preview_photos(256).shape == (4, 256, 256, 3)
