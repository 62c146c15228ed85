"""stylecbn.media.outputs: which output each input gets, and every plan it refuses.

The planner reads only names, suffixes and what exists, so the inputs here are files of a few
bytes; `stylecbn apply` on real images is in test_cli_apply.py.
"""

import os
from pathlib import Path

import pytest

from stylecbn.media.outputs import (
    DEFAULT_NAME,
    STDIO,
    Job,
    OutputPlan,
    check_image_output,
    check_name_pattern,
)
from stylecbn.errors import ConfigError, DataError, ImageError


def touch(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


def outputs(plan, style="starry"):
    return [job.output for job in plan.jobs(style)]


# --- inputs -------------------------------------------------------------------------------


def test_folders_give_their_images_and_videos_sorted_hidden_ones_left_out(tmp_path):
    for name in ("b.jpg", "a.png", "clip.mp4", "notes.txt", ".hidden.png", "sub/deep.png",
                 ".cache/skip.png"):
        touch(tmp_path / "in" / name)
    (tmp_path / "out").mkdir()
    plan = OutputPlan([tmp_path / "in"], tmp_path / "out")
    assert [job.source for job in plan.jobs("s")] == [
        str(tmp_path / "in" / name) for name in ("a.png", "b.jpg", "clip.mp4")
    ]
    deep = OutputPlan([tmp_path / "in"], tmp_path / "out", recursive=True)
    assert outputs(deep, "s")[-1] == tmp_path / "out" / "sub" / "deep_s.png"  # mirrored
    assert all(".cache" not in job.source for job in deep.jobs("s"))


def test_a_file_named_twice_is_stylized_once(tmp_path):
    photo = touch(tmp_path / "in" / "a.png")
    plan = OutputPlan([photo, tmp_path / "in", str(photo)], tmp_path / "out")
    assert plan.jobs("s") == [Job(str(photo), tmp_path / "out" / "a_s.png")]


def test_missing_inputs_empty_folders_and_stdin_twice(tmp_path):
    with pytest.raises(ImageError, match="absent.png does not exist"):
        OutputPlan([tmp_path / "absent.png"])
    touch(tmp_path / "empty" / "sub" / "a.png")
    touch(tmp_path / "empty" / "notes.txt")
    with pytest.raises(DataError, match=r"No images or videos in .*empty \(looked for .*\) "
                                        r"\(use recursive=True to look in subfolders\)\.$"):
        OutputPlan([tmp_path / "empty"])
    (tmp_path / "empty" / "sub" / "a.png").unlink()
    with pytest.raises(DataError, match=r"empty or its subfolders \(looked for [^)]*\)\.$"):
        OutputPlan([tmp_path / "empty"], recursive=True)
    with pytest.raises(ConfigError, match=r"stdin \('-'\) can be given only once"):
        OutputPlan([STDIO, STDIO])


# --- names --------------------------------------------------------------------------------


@pytest.mark.parametrize("pattern", ["{stem}_{nope}.png", "{0}.png", "{stem", "{stem!x}.png"])
def test_a_bad_name_pattern_is_refused_with_the_fields(pattern):
    with pytest.raises(ConfigError, match=r"^Bad name pattern .*\{stem\}, \{style\}, \{ext\}, "
                                          r"\{index\}"):
        check_name_pattern(pattern)


@pytest.mark.parametrize("pattern", ["sub/{stem}.png", "{stem}\\{style}.png", "../{stem}.png"])
def test_a_name_pattern_gives_a_file_name_not_a_path(pattern):
    with pytest.raises(ConfigError, match="must give a file name, not a path"):
        check_name_pattern(pattern)


def test_names_from_the_pattern_the_format_and_the_input(tmp_path):
    still, clip = touch(tmp_path / "p.jpeg"), touch(tmp_path / "clip.mov")
    beside = OutputPlan([still, clip])
    assert beside.kind == "beside"
    assert outputs(beside) == [tmp_path / "p_starry.jpeg", tmp_path / "clip_starry.mov"]
    # --format changes images only; a video keeps its container
    webp = OutputPlan([still, clip], name="{index}-{stem}-{style}.{ext}", format="WEBP")
    assert webp.format == "webp"
    assert outputs(webp) == [tmp_path / "0-p-starry.webp", tmp_path / "1-clip-starry.mov"]
    # stdin has no suffix to keep: PNG, named "stdin"
    to_folder = OutputPlan([STDIO], f"{tmp_path / 'out'}/")  # the slash asks for a folder
    assert outputs(to_folder) == [tmp_path / "out" / "stdin_starry.png"]
    with pytest.raises(ConfigError, match=r"format must be one of png, jpg, .*received: 'xyz'"):
        OutputPlan([still], format="xyz")


# --- the kind of output -------------------------------------------------------------------


def test_stdout(tmp_path):
    photo = touch(tmp_path / "p.png")
    assert OutputPlan([photo], STDIO).jobs("s") == [Job(str(photo), None)]
    from_stdin = OutputPlan([STDIO])  # no output: stdin goes to stdout
    assert from_stdin.kind == "stdout" and from_stdin.jobs("s") == [Job(STDIO, None)]
    with pytest.raises(ConfigError, match="Only one image can go to stdout"):
        OutputPlan([photo, touch(tmp_path / "q.png")], STDIO)
    with pytest.raises(ConfigError, match="Only one image can go to stdout"):
        OutputPlan([STDIO, photo])
    with pytest.raises(ConfigError, match=r"A video cannot go to stdout; .* such as out\.mkv"):
        OutputPlan([touch(tmp_path / "clip.mkv")], STDIO)


def test_a_folder_is_created_for_several_inputs_a_folder_input_or_a_trailing_slash(tmp_path):
    first, second = touch(tmp_path / "p.png"), touch(tmp_path / "q.png")
    plan = OutputPlan([first, second], tmp_path / "new" / "deeper")
    assert plan.kind == "folder" and (tmp_path / "new" / "deeper").is_dir()
    folder = touch(tmp_path / "in" / "a.png").parent
    assert OutputPlan([folder], tmp_path / "from_folder").kind == "folder"
    assert (tmp_path / "from_folder").is_dir()
    assert OutputPlan([first], f"{tmp_path / 'slash'}/").kind == "folder"
    assert OutputPlan([first], tmp_path / "slash").kind == "folder"  # it exists now
    with pytest.raises(ConfigError, match=r"The output .*q\.png is a file, not a folder"):
        OutputPlan([first, second], second)
    with pytest.raises(ImageError, match="Cannot create the output folder .*p.png/sub/"):
        OutputPlan([first], f"{first}/sub/")  # under a file


def test_one_input_to_a_file(tmp_path):
    photo, clip = touch(tmp_path / "p.png"), touch(tmp_path / "clip.mp4")
    plan = OutputPlan([photo], tmp_path / "out.jpg")
    assert plan.kind == "file" and outputs(plan) == [tmp_path / "out.jpg"]
    assert outputs(OutputPlan([clip], tmp_path / "out.webm")) == [tmp_path / "out.webm"]
    cases = [
        ([photo], tmp_path / "out.mp4", r"p\.png is an image: the output .*out\.mp4 is for a "
                                        r"video; use one of \.png"),
        ([clip], tmp_path / "out.png", r"A video is written as a video: the output must be a "
                                       r"\.mp4, \.mov, \.mkv, \.webm, \.avi file"),
        ([clip], tmp_path / "absent" / "out.mp4", r"Cannot write .*out\.mp4: the folder "
                                                  r".*absent does not exist"),
        ([photo], tmp_path / "absent" / "out.png", r"Cannot write .*out\.png: the folder "),
        ([photo], tmp_path / "out.xyz", r"Cannot tell the image format of .*out\.xyz; use one"),
        ([photo], tmp_path / "no_suffix", r"Output folder .*no_suffix does not exist; create"),
    ]
    for inputs, output, message in cases:
        with pytest.raises(ConfigError, match=message):
            OutputPlan(inputs, output)


def test_check_image_output(tmp_path):
    check_image_output(tmp_path / "a.tiff")
    check_image_output(str(tmp_path / "a.PNG"))
    for output, message in [(f"{tmp_path / 'folder'}/", "Output folder"),
                            (tmp_path / "a.mp4", "Cannot tell the image format"),
                            (tmp_path / "no" / "a.png", "Cannot write")]:
        with pytest.raises(ConfigError, match=message):
            check_image_output(output)


# --- collisions ---------------------------------------------------------------------------


def test_an_input_is_never_overwritten(tmp_path):
    photo = touch(tmp_path / "p.png")
    os.link(photo, tmp_path / "linked.png")
    for plan in (OutputPlan([photo], photo),  # the output is the input
                 OutputPlan([photo], name="{stem}.{ext}"),  # a name that gives the input's
                 OutputPlan([photo], tmp_path / "linked.png")):  # another name of the input
        with pytest.raises(ConfigError, match=r"Writing .* would overwrite the input .*p\.png; "
                                              r"inputs are never overwritten: choose another "
                                              r"output or name pattern\.$"):
            plan.jobs("s")
    assert photo.read_bytes() == b"x"
    # another input's name: a.png's output would be a_s.png, itself an input
    a, a_s = touch(tmp_path / "two" / "a.png"), touch(tmp_path / "two" / "a_s.png")
    with pytest.raises(ConfigError, match=f"would overwrite the input {a_s}"):
        OutputPlan([a, a_s], name="{stem}_s.{ext}").jobs("s")


def test_two_inputs_never_write_one_file(tmp_path):
    first, second = touch(tmp_path / "a" / "same.png"), touch(tmp_path / "b" / "same.png")
    (tmp_path / "out").mkdir()
    plan = OutputPlan([first, second], tmp_path / "out")
    with pytest.raises(ConfigError, match=r"a/same\.png and .*b/same\.png would both be written "
                                          r"to .*out/same_s\.png; use an output folder"):
        plan.jobs("s")
    # {index} keeps them apart, as does a recursive folder, whose subfolders are mirrored
    indexed = OutputPlan([first, second], tmp_path / "out", name="{index}_" + DEFAULT_NAME)
    assert outputs(indexed, "s") == [tmp_path / "out" / "0_same_s.png",
                                     tmp_path / "out" / "1_same_s.png"]
    mirrored = OutputPlan([tmp_path], tmp_path / "out", recursive=True)
    assert outputs(mirrored, "s") == [tmp_path / "out" / "a" / "same_s.png",
                                      tmp_path / "out" / "b" / "same_s.png"]
    same_name_other_format = OutputPlan([touch(tmp_path / "c" / "x.png"),
                                         touch(tmp_path / "c" / "x.jpg")], tmp_path / "out",
                                        format="png")
    with pytest.raises(ConfigError, match="would both be written"):
        same_name_other_format.jobs("s")


def test_paths_and_strings_plan_alike(tmp_path):
    photo = touch(tmp_path / "p.png")
    assert (OutputPlan([photo], tmp_path / "o.png").jobs("s")
            == OutputPlan([str(photo)], str(tmp_path / "o.png")).jobs("s"))
    assert isinstance(OutputPlan([photo]).jobs("s")[0].output, Path)
