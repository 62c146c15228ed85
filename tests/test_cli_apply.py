"""`stylecbn apply`, `styles`, `sheet`, `interpolate`, `info` through click's CliRunner."""

import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from stylecbn.model import saving as modelfile
from stylecbn.cli.root import main
from stylecbn.model.network import build_network

from helpers import randomize_style_tables, seeded_network

NAMES = ["starry", "wave", "mosaic"]


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    net = seeded_network(3, style_names=NAMES, style_credits=["Van Gogh", "Hokusai", ""],
                         width_multiplier=0.25)
    randomize_style_tables(net)
    path = tmp_path_factory.mktemp("model") / "small.keras"
    modelfile.save_model(net, path)
    return str(path)


@pytest.fixture
def no_builtin(tmp_path, monkeypatch):
    monkeypatch.setattr(modelfile, "ASSETS_DIR", tmp_path / "no_assets")


def photo(h=40, w=52, seed=1):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    base = np.stack([x, y, 1 - x * y], axis=-1)
    return np.clip((base + rng.normal(0, 0.05, base.shape)) * 255, 0, 255).astype(np.uint8)


def save(path, h=40, w=52, seed=1):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(photo(h, w, seed)).save(path)
    return path


def run(*args, input=None):
    return CliRunner().invoke(main, [str(a) for a in args], input=input, catch_exceptions=False)


def pixels(path_or_bytes):
    source = io.BytesIO(path_or_bytes) if isinstance(path_or_bytes, bytes) else path_or_bytes
    with Image.open(source) as image:
        return np.asarray(image.convert("RGB"))


# --- apply: outputs -----------------------------------------------------------------------


def test_apply_file_to_file(tmp_path, model_path):
    src = save(tmp_path / "p.png")
    result = run("apply", src, "-m", model_path, "-s", "wave", "-o", tmp_path / "out.png")
    assert result.exit_code == 0, result.output
    assert pixels(tmp_path / "out.png").shape == (40, 52, 3)
    assert re.fullmatch(rf"Wrote {re.escape(str(tmp_path / 'out.png'))} \(52x40, \d+\.\d s\)",
                        result.stderr.strip()), result.stderr
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp files left


def test_apply_beside_input_with_name_pattern_and_format(tmp_path, model_path):
    src = save(tmp_path / "p.png")
    assert run("apply", src, "-m", model_path, "-s", "starry:1,mosaic:3").exit_code == 0
    assert (tmp_path / "p_mosaic75-starry25.png").is_file()
    result = run("apply", src, "-m", model_path, "--name", "{index}-{stem}-{style}.{ext}",
                 "--format", "jpg", "--quality", "80")
    assert result.exit_code == 0, result.output
    with Image.open(tmp_path / "0-p-starry.jpg") as image:
        assert image.format == "JPEG"


def test_folder_with_a_corrupt_file_continues_and_exits_1(tmp_path, model_path):
    for name in ("a.png", "b.jpg", "d.png"):
        save(tmp_path / "in" / name)
    (tmp_path / "in" / "c.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    (tmp_path / "in" / "notes.txt").write_text("not an image")
    (tmp_path / "out").mkdir()
    result = run("apply", tmp_path / "in", "-m", model_path, "-o", tmp_path / "out")
    assert result.exit_code == 1
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "a_starry.png", "b_starry.jpg", "d_starry.png"
    ]
    assert "c.png" in result.stderr and "not a readable image" in result.stderr
    assert "Wrote 3 of 4 images; 1 failed." in result.stderr
    assert "Stylizing" in result.stderr  # the progress bar


def test_any_failure_is_that_files_one_line_error_and_the_batch_goes_on(
        tmp_path, model_path, monkeypatch):
    # b's output name is over the file-system limit (255 bytes): an OSError, not a StylecbnError.
    for name in ("a", "b" * 248, "c", "d"):
        save(tmp_path / "in" / f"{name}.png")
    from stylecbn.cli import apply as apply_command

    real_write = apply_command.write_image

    def write_failing_for_c(dest, *args, **kwargs):
        if Path(dest).name.startswith("c_"):
            raise RuntimeError("something nobody expected")
        return real_write(dest, *args, **kwargs)

    monkeypatch.setattr(apply_command, "write_image", write_failing_for_c)
    result = run("apply", tmp_path / "in", "-m", model_path, "-o", tmp_path / "out")
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a_starry.png", "d_starry.png"]
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 2
    assert "File name too long" in errors[0]
    assert errors[1] == (
        f"Error: {tmp_path / 'in' / 'c.png'}: unexpected RuntimeError: something nobody "
        "expected; the other inputs go on (please report this)"
    )
    assert "Wrote 2 of 4 images; 2 failed." in result.stderr


def test_output_folder_for_several_inputs_is_created(tmp_path, model_path):
    first, second = save(tmp_path / "p.png"), save(tmp_path / "q.png", seed=2)
    result = run("apply", first, second, "-m", model_path, "-o", tmp_path / "new" / "deeper")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "new" / "deeper").iterdir()) == [
        "p_starry.png", "q_starry.png"
    ]
    result = run("apply", first, "-m", model_path, "-o", f"{tmp_path / 'slash'}/")
    assert result.exit_code == 0, result.output
    assert [p.name for p in (tmp_path / "slash").iterdir()] == ["p_starry.png"]


def test_recursive_mirrors_subfolders(tmp_path, model_path):
    save(tmp_path / "in" / "top.png")
    save(tmp_path / "in" / "sub" / "deep.png")
    save(tmp_path / "in" / ".hidden" / "skip.png")
    (tmp_path / "out").mkdir()
    assert run("apply", tmp_path / "in", "-m", model_path, "-o", tmp_path / "out").exit_code == 0
    assert [p.name for p in (tmp_path / "out").rglob("*.png")] == ["top_starry.png"]
    result = run("apply", tmp_path / "in", "-r", "-m", model_path, "-o", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out" / "sub" / "deep_starry.png").is_file()
    assert not (tmp_path / "out" / ".hidden").exists()


def test_stdin_to_stdout(tmp_path, model_path):
    data = save(tmp_path / "p.png").read_bytes()
    result = run("apply", "-", "-m", model_path, "-s", "1", input=data)
    assert result.exit_code == 0, result.stderr
    jpeg_in = run("apply", "-", "-m", model_path, input=save(tmp_path / "p.jpg").read_bytes())
    assert jpeg_in.stdout_bytes[:8] == b"\x89PNG\r\n\x1a\n"  # stdout is PNG, as --help says
    out = pixels(result.stdout_bytes)
    file_result = run("apply", tmp_path / "p.png", "-m", model_path, "-s", "1", "-o", "-",
                      "--format", "png")
    assert file_result.exit_code == 0
    np.testing.assert_array_equal(out, pixels(file_result.stdout_bytes))
    jpeg = run("apply", "-", "-m", model_path, "--format", "jpg", input=data)
    assert jpeg.stdout_bytes[:2] == b"\xff\xd8"
    to_file = run("apply", "-", "-m", model_path, "-o", tmp_path / "from_stdin.png", input=data)
    assert to_file.exit_code == 0 and (tmp_path / "from_stdin.png").is_file()


def test_json_records(tmp_path, model_path):
    save(tmp_path / "in" / "a.png")
    (tmp_path / "in" / "bad.png").write_bytes(b"junk")
    (tmp_path / "out").mkdir()
    result = run("apply", tmp_path / "in", "-m", model_path, "-s", "starry:1,wave:1",
                 "--json", "-o", tmp_path / "out", "--strength", "0.5")
    assert result.exit_code == 1
    records = [json.loads(line) for line in result.stdout.splitlines()]
    ok, bad = records
    assert ok["status"] == "ok" and ok["style"] == {"starry": 0.5, "wave": 0.5}
    assert ok["width"] == 52 and ok["height"] == 40 and ok["frames"] == 1
    assert ok["strength"] == 0.5 and ok["output"].endswith("a_starry50-wave50.png")
    assert bad["status"] == "error" and "bad.png" in bad["error"]


def test_strength_preserve_color_mask_and_max_size(tmp_path, model_path):
    src = save(tmp_path / "p.png", 48, 64)
    args = ("apply", src, "-m", model_path, "-s", "2")
    assert run(*args, "--strength", "0", "-o", tmp_path / "zero.png").exit_code == 0
    np.testing.assert_array_equal(pixels(tmp_path / "zero.png"), pixels(src))
    run(*args, "-o", tmp_path / "full.png")
    run(*args, "--preserve-color", "-o", tmp_path / "kept.png")
    assert np.abs(pixels(tmp_path / "full.png").astype(int) - pixels(tmp_path / "kept.png")).mean() > 2
    mask = np.zeros((48, 64), np.uint8)
    mask[:, 32:] = 255
    Image.fromarray(mask).save(tmp_path / "mask.png")
    result = run(*args, "--mask", tmp_path / "mask.png", "--mask-style", "0", "-o", tmp_path / "m.png")
    assert result.exit_code == 0, result.output
    assert not np.array_equal(pixels(tmp_path / "m.png"), pixels(tmp_path / "full.png"))
    assert run(*args, "--max-size", "32", "-o", tmp_path / "small.png").exit_code == 0
    assert pixels(tmp_path / "small.png").shape == (24, 32, 3)
    assert run(*args, "--max-size", "0", "-o", tmp_path / "keep.png").exit_code == 0
    assert pixels(tmp_path / "keep.png").shape == (48, 64, 3)


def test_animated_gif_round_trip(tmp_path, model_path):
    frames = [Image.fromarray(photo(seed=s)) for s in range(3)]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:], duration=90, loop=0)
    result = run("apply", tmp_path / "anim.gif", "-m", model_path, "-o", tmp_path / "out.gif")
    assert result.exit_code == 0, result.output
    with Image.open(tmp_path / "out.gif") as image:
        assert image.n_frames == 3


# --- apply: errors ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "style, fragment",
    [
        ("vangogh", "Unknown style 'vangogh'"),
        ("9", "out of range"),
        ("0:x", "needs a number"),
        ("0:-1", "negative"),
    ],
)
def test_bad_styles_exit_2_and_list_valid_ones(tmp_path, model_path, style, fragment):
    src = save(tmp_path / "p.png")
    result = run("apply", src, "-m", model_path, "-s", style, "-o", tmp_path / "o.png")
    assert result.exit_code == 2
    assert fragment in result.stderr
    if fragment != "needs a number":
        assert "0=starry, 1=wave, 2=mosaic" in result.stderr or "negative" in fragment
    assert not (tmp_path / "o.png").exists()


def test_input_errors_exit_2(tmp_path, model_path):
    tiny = save(tmp_path / "tiny.png", 10, 10)
    result = run("apply", tiny, "-m", model_path, "-o", tmp_path / "o.png")
    assert result.exit_code == 2 and "at least 16 px" in result.stderr
    corrupt = tmp_path / "c.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff\xe0 truncated")
    result = run("apply", corrupt, "-m", model_path, "-o", tmp_path / "o.png")
    assert result.exit_code == 2 and "c.jpg" in result.stderr
    result = run("apply", tmp_path / "missing.png", "-m", model_path)
    assert result.exit_code == 2 and "does not exist" in result.stderr
    (tmp_path / "empty").mkdir()
    result = run("apply", tmp_path / "empty", "-m", model_path)
    assert result.exit_code == 2 and "No images or videos in" in result.stderr and "--recursive" in result.stderr
    result = run("apply", "-", "-", "-m", model_path, input=b"")
    assert result.exit_code == 2 and "only once" in result.stderr


def test_damaged_tiff_is_one_line_without_pillow_warnings(tmp_path, model_path):
    # Pillow warns about a cut TIFF's tags ("Corrupt EXIF data") before refusing it.
    whole = tmp_path / "whole.tif"
    Image.fromarray(photo()).save(whole)
    cut = tmp_path / "cut.tif"
    cut.write_bytes(whole.read_bytes()[:40])
    result = run("apply", cut, "-m", model_path, "-o", tmp_path / "o.png")
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        f"Error: {cut} is not a readable image (unknown or unsupported file format)"
    ]


def test_pixel_limit_option_and_environment(tmp_path, model_path, monkeypatch):
    src = save(tmp_path / "p.png")  # 52x40 = 2,080 pixels
    result = run("apply", src, "-m", model_path, "-o", tmp_path / "o.png", "--max-pixels", 2000)
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        f"Error: {src} is 52x40 px, more than the 2,000 pixels allowed (about 48 kB to decode); "
        "downscale it, or raise the limit (`max_pixels`, or the environment variable "
        "STYLECBN_MAX_PIXELS) if the machine has the memory"
    ]
    monkeypatch.setenv("STYLECBN_MAX_PIXELS", "2000")
    for command in (["apply", src, "-o", tmp_path / "o.png"], ["sheet", src, "-o", tmp_path / "s.png"],
                    ["interpolate", src, "--from", 0, "--to", 1, "--frames", 2, "-o",
                     tmp_path / "i.gif"]):
        result = run(*command, "-m", model_path)
        assert result.exit_code == 2 and "more than the 2,000 pixels" in result.stderr, command
    monkeypatch.setenv("STYLECBN_MAX_PIXELS", "2080")
    assert run("apply", src, "-m", model_path, "-o", tmp_path / "o.png").exit_code == 0


def test_dev_zero_is_refused_at_once(tmp_path, model_path):
    result = run("apply", "/dev/zero", "-m", model_path, "-o", tmp_path / "o.png")
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        "Error: /dev/zero is not a readable image (unknown or unsupported file format)"
    ]


def test_model_errors_exit_2(tmp_path, model_path, no_builtin):
    src = save(tmp_path / "p.png")
    result = run("apply", src, "-m", tmp_path / "missing.keras", "-o", tmp_path / "o.png")
    assert result.exit_code == 2 and "missing.keras does not exist" in result.stderr
    result = run("apply", src, "-o", tmp_path / "o.png")
    assert result.exit_code == 2 and "No built-in model is installed" in result.stderr
    (tmp_path / "broken.keras").write_bytes(b"PK not really")
    result = run("apply", src, "-m", tmp_path / "broken.keras")
    assert result.exit_code == 2 and "broken.keras" in result.stderr


def test_output_errors_exit_2_and_inputs_are_never_overwritten(tmp_path, model_path):
    src = save(tmp_path / "p.png")
    before = src.read_bytes()
    cases = [
        (("-o", src), "would overwrite the input"),
        (("--name", "{stem}.{ext}"), "would overwrite the input"),
        (("-o", tmp_path / "nodir" / "x.png"), "does not exist"),
        (("-o", tmp_path / "x.xyz"), "Cannot tell the image format"),
        (("--name", "{stem}_{nope}.png"), "Bad --name pattern"),
        (("--name", "sub/{stem}.png"), "must give a file name"),
        (("--max-size", "8"), "max_size"),
        (("--strength", "1.5"), "1.5"),
        (("--mask", src), "--mask and --mask-style go together"),
        (("-o", "-", "--json"), "--json prints to stdout"),
    ]
    for extra, fragment in cases:
        result = run("apply", src, "-m", model_path, *extra)
        assert result.exit_code == 2, (extra, result.output)
        assert fragment in result.output, (extra, result.output)
    assert src.read_bytes() == before
    other = save(tmp_path / "q.png")
    (tmp_path / "a_file").write_bytes(b"x")
    result = run("apply", src, other, "-m", model_path, "-o", tmp_path / "a_file")
    assert result.exit_code == 2 and "is a file, not a folder" in result.stderr
    result = run("apply", src, other, "-m", model_path, "-o", "-")
    assert result.exit_code == 2 and "Only one image" in result.stderr
    save(tmp_path / "a" / "same.png")
    save(tmp_path / "b" / "same.png")
    (tmp_path / "out").mkdir()
    result = run("apply", tmp_path / "a" / "same.png", tmp_path / "b" / "same.png", "-m",
                 model_path, "-o", tmp_path / "out")
    assert result.exit_code == 2 and "would both be written" in result.stderr


# --- styles, sheet, interpolate, info --------------------------------------------------------


def test_styles(model_path, no_builtin):
    result = run("styles", "-m", model_path)
    assert result.exit_code == 0
    assert result.stdout.splitlines() == ["  0  starry  Van Gogh", "  1  wave    Hokusai", "  2  mosaic"]
    records = [json.loads(line) for line in run("styles", "-m", model_path, "--json").stdout.splitlines()]
    assert records[1] == {"index": 1, "name": "wave", "credits": "Hokusai"}
    result = run("styles")
    assert result.exit_code == 2 and "No built-in model" in result.stderr


def test_styles_and_info_escape_control_characters_in_old_files(tmp_path):
    # A model saved before training refused them: its names could retitle the terminal.
    net = build_network(2, style_names=["evil\x1b]0;pwned\x07", "two\nlines"],
                        style_credits=["\x1b[31mred", ""], width_multiplier=0.25)
    path = tmp_path / "old.keras"
    modelfile.save_model(net, path)
    result = run("styles", "-m", path)
    assert result.exit_code == 0
    assert result.stdout.splitlines() == ["  0  evil\\x1b]0;pwned\\x07  \\x1b[31mred",
                                          "  1  two\\nlines"]
    result = run("info", "-m", path)
    assert result.exit_code == 0 and "\x1b" not in result.stdout and "\x07" not in result.stdout
    assert "0=evil\\x1b]0;pwned\\x07, 1=two\\nlines" in result.stdout
    result = run("apply", save(tmp_path / "p.png"), "-m", path, "--style", "nope", "-o",
                 tmp_path / "o.png")
    assert result.exit_code == 2 and "\x1b" not in result.stderr and "evil\\x1b" in result.stderr


def test_sheet(tmp_path, model_path):
    src = save(tmp_path / "p.png")
    result = run("sheet", src, "-m", model_path, "-o", tmp_path / "sheet.png", "--tile-size", "32")
    assert result.exit_code == 0, result.output
    # original + 3 styles in 2 columns of 32x25 tiles, each with a label row.
    assert pixels(tmp_path / "sheet.png").shape == (2 * (25 + 20 + 6) + 6, 2 * (32 + 6) + 6, 3)
    result = run("sheet", src, "-m", model_path, "-o", "-", "--tile-size", "32", "--columns", "4",
                 "--styles", "wave,0", "--no-original")
    assert pixels(result.stdout_bytes).shape == (25 + 20 + 12, 2 * (32 + 6) + 6, 3)
    assert run("sheet", src, "-m", model_path, "-o", src).exit_code == 2
    result = run("sheet", src, "-m", model_path, "-o", tmp_path / "s.png", "--styles", "nope")
    assert result.exit_code == 2 and "0=starry" in result.stderr


def test_interpolate_outputs(tmp_path, model_path):
    src = save(tmp_path / "p.png")
    base = ("interpolate", src, "-m", model_path, "--max-size", "32")
    result = run(*base, "--from", "0", "--to", "mosaic", "--frames", "3", "-o", tmp_path / "a.gif")
    assert result.exit_code == 0, result.output
    with Image.open(tmp_path / "a.gif") as gif:
        assert gif.n_frames == 3 and gif.size == (32, 25)
    (tmp_path / "frames").mkdir()
    assert run(*base, "--from", "0", "--to", "1", "--frames", "3", "-o", tmp_path / "frames").exit_code == 0
    assert sorted(p.name for p in (tmp_path / "frames").iterdir()) == ["p_000.png", "p_001.png", "p_002.png"]
    assert run(*base, "--from", "0", "--to", "1", "--frames", "2", "-o", tmp_path / "strip.png").exit_code == 0
    assert pixels(tmp_path / "strip.png").shape == (25 + 20 + 12, 2 * (32 + 6) + 6, 3)
    result = run(*base, "--grid", "0", "1", "2", "wave:1,mosaic:1", "--steps", "2", "-o", tmp_path / "grid.png")
    assert result.exit_code == 0, result.output
    assert pixels(tmp_path / "grid.png").shape == (2 * (25 + 6) + 6 + 40, 2 * (32 + 6) + 6, 3)


def test_interpolate_errors(tmp_path, model_path):
    src = save(tmp_path / "p.png")
    base = ("interpolate", src, "-m", model_path)
    cases = [
        (("-o", tmp_path / "a.gif"), "Give --from and --to"),
        (("--from", "0", "--to", "1", "--grid", "0", "1", "2", "0", "-o", tmp_path / "a.gif"), "not both"),
        (("--from", "0", "--to", "7", "-o", tmp_path / "a.gif"), "out of range"),
        (("--from", "0", "--to", "1", "-o", tmp_path / "nodir/"), "does not exist"),
        (("--from", "0", "--to", "1", "-o", src), "would overwrite the input"),
        (("--from", "0", "--to", "1", "--frames", "1", "-o", tmp_path / "a.gif"), "--frames"),
        (("--grid", "0", "1", "2", "0", "-o", tmp_path), "give -o a file"),
    ]
    for extra, fragment in cases:
        result = run(*base, *extra)
        assert result.exit_code == 2, (extra, result.output)
        assert fragment in result.output, (extra, result.output)


def test_info(model_path, no_builtin, tmp_path):
    result = run("info", "-m", model_path)
    assert result.exit_code == 0, result.output
    assert "backend:" in result.stdout and "3 styles, instance normalization" in result.stdout
    assert "0=starry, 1=wave, 2=mosaic" in result.stdout and "devices:" in result.stdout
    record = json.loads(run("info", "-m", model_path, "--json").stdout)
    assert record["model"]["num_styles"] == 3 and record["model"]["width_multiplier"] == 0.25
    assert record["devices"] and record["keras"]
    result = run("info")
    assert result.exit_code == 0 and "no built-in model installed" in result.stdout
    result = run("info", "-m", tmp_path / "missing.keras")
    assert result.exit_code == 2 and "does not exist" in result.stderr


@pytest.mark.slow
def test_real_photos_folder(shared_data, tmp_path, model_path):
    photos = sorted((shared_data / "content").glob("*.png"))[:2]
    (tmp_path / "in").mkdir()
    for p in photos:
        (tmp_path / "in" / p.name).symlink_to(p)
    (tmp_path / "out").mkdir()
    result = run("apply", tmp_path / "in", "-m", model_path, "-s", "starry:1,wave:1",
                 "--max-size", "96", "--preserve-color", "-o", tmp_path / "out", "--json")
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(records) == 2 and all(max(r["width"], r["height"]) == 96 for r in records)


def test_progress_bar_only_on_a_terminal(monkeypatch):
    """sheet, interpolate and videos draw a bar (count and rate) on a terminal's stderr; piped
    stderr gets no callback and no bar."""
    import sys

    from stylecbn.cli.common import progress_bar

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    with progress_bar("Frames", "frames") as progress:
        for done in range(1, 4):
            progress(done, 3)
    assert "Frames" in terminal.getvalue() and "3/3" in terminal.getvalue()
    assert "frames/s" in terminal.getvalue()
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    with progress_bar("Frames", "frames") as progress:
        assert progress is None
