"""Video in and out (stylecbn.media.video) and Stylizer.stylize_video, on tiny generated clips."""

from fractions import Fraction

import av
import numpy as np
import pytest

from stylecbn.errors import ConfigError, ImageError, VideoError
from stylecbn.applying.stylize import Stylizer
from stylecbn.applying.flicker import FlickerReducer
from stylecbn.media.video import VIDEO_SUFFIXES, probe_video, stream_video

from helpers import make_video, randomize_style_tables, seeded_network


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """A 32x32, 8-frame, 24 frames/s H.264 clip with an AAC tone."""
    path = tmp_path_factory.mktemp("clips") / "clip.mp4"
    make_video(path)
    return path


@pytest.fixture(scope="module")
def stylizer():
    net = seeded_network(3, style_names=["a", "b", "c"], width_multiplier=0.25)
    return Stylizer(randomize_style_tables(net))


def decoded(path):
    """(frames as uint8 RGB, their times in seconds) of a video's first stream."""
    with av.open(str(path)) as container:
        frames = list(container.decode(video=0))
    return [f.to_ndarray(format="rgb24") for f in frames], [float(f.time) for f in frames]


def audio_packets(path):
    with av.open(str(path)) as container:
        return [bytes(p) for p in container.demux(audio=0) if p.size]


def leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def identity(frame, index):
    return frame


# --- probing ------------------------------------------------------------------------------


def test_probe_reads_size_frames_rate_rotation_and_audio(tmp_path, clip):
    info = probe_video(clip)
    assert (info.width, info.height, info.frames, info.frame_rate) == (32, 32, 8, 24)
    assert info.rotation == 0 and info.audio_codecs == ("aac",)
    assert info.duration == pytest.approx(8 / 24, abs=0.01)
    turned = tmp_path / "turned.mkv"  # Matroska stores no frame count: packets are counted
    make_video(turned, width=48, height=32, rotation=90, audio=None)
    info = probe_video(turned)
    assert (info.frames, info.rotation, info.display_size, info.audio_codecs) == (8, 90, (32, 48), ())


# --- streaming ------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".mp4", ".mov", ".mkv", ".avi"])
def test_frames_timing_and_audio_are_kept(tmp_path, clip, suffix):
    out = tmp_path / f"out{suffix}"
    calls = []
    result = stream_video(clip, out, identity, (32, 32), progress=lambda *a: calls.append(a))
    assert result.frames == 8 and (result.width, result.height) == (32, 32)
    assert result.frame_rate == 24 and result.audio_streams == 1
    assert calls == [(i, 8) for i in range(1, 9)]
    frames, times = decoded(out)
    source_frames, source_times = decoded(clip)
    assert len(frames) == 8
    # Containers may shift the whole clip (AAC priming in Matroska, AVI), never the spacing:
    # 1/24 s between frames, to the container's clock (1 ms in Matroska).
    np.testing.assert_allclose(np.diff(times), np.diff(source_times), atol=1.5e-3)
    # The audio packets are the input's, byte for byte: copied, not re-encoded.
    assert audio_packets(out) == audio_packets(clip)
    # Re-encoding the same pictures. The clip's noise has a standard deviation of 7.7 levels
    # (mean absolute value 6.1); a lossy codec removes at most about that, plus a level or two
    # of rounding and 4:2:0 chroma: under 10. Wrong colours or shifted frames give tens.
    assert np.mean([np.abs(a.astype(int) - b).mean() for a, b in zip(frames, source_frames)]) < 10
    assert not leftovers(tmp_path)


# Frames 10 ms apart among 40-600 ms gaps: rounding to 1/(average rate) puts some on one tick.
VFR_MS = [0, 40, 50, 60, 200, 210, 400, 1000]


def make_vfr(path):
    """A clip with a variable frame rate: frames at VFR_MS milliseconds."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width = stream.height = 32
        stream.pix_fmt = "yuv420p"
        stream.time_base = stream.codec_context.time_base = Fraction(1, 1000)
        for index, pts in enumerate(VFR_MS):
            frame = av.VideoFrame.from_ndarray(np.full((32, 32, 3), index * 30, np.uint8), "rgb24")
            frame.pts, frame.time_base = pts, Fraction(1, 1000)
            container.mux(stream.encode(frame))
        container.mux(stream.encode())


@pytest.mark.parametrize("source_suffix", [".mp4", ".mkv"])
def test_variable_frame_rates_are_kept(tmp_path, source_suffix):
    source = tmp_path / f"vfr{source_suffix}"
    make_vfr(source)
    for suffix in VIDEO_SUFFIXES:
        out = tmp_path / f"out{suffix}"
        assert stream_video(source, out, identity, (32, 32)).frames == len(VFR_MS)
        frames, times = decoded(out)
        # Flat grey levels 0, 30, ..., 210: each frame comes back in its place (codec error is
        # a level or two, the neighbours are 30 apart).
        np.testing.assert_allclose([f.mean() for f in frames], np.arange(8) * 30, atol=8)
        if suffix == ".avi":  # one frame per tick of a constant rate: the order is kept
            assert np.all(np.diff(times) > 0)
        else:  # every frame at its own time, to the millisecond (Matroska's clock)
            np.testing.assert_allclose(times, np.array(VFR_MS) / 1000, atol=1e-3)
    assert not leftovers(tmp_path)


def test_webm_takes_opus_and_refuses_aac(tmp_path, clip):
    opus = tmp_path / "opus.mkv"
    make_video(opus, audio="libopus")
    result = stream_video(opus, tmp_path / "out.webm", identity, (32, 32))
    assert result.frames == 8 and audio_packets(tmp_path / "out.webm") == audio_packets(opus)
    with pytest.raises(VideoError, match=r"aac audio .* \.webm .*\.mkv"):
        stream_video(clip, tmp_path / "bad.webm", identity, (32, 32))
    assert not (tmp_path / "bad.webm").exists() and not leftovers(tmp_path)


def test_colours_survive_the_round_trip(tmp_path):
    # Flat colour frames: 4:2:0 chroma subsampling and BT.709 limited range cost at most a few
    # levels (rounding in two conversions plus the codec); a colour-matrix mix-up (BT.601 vs
    # BT.709) would shift saturated colours by 10 levels or more.
    colours = [(200, 30, 40), (20, 180, 60), (40, 60, 220), (128, 128, 128)]
    path = tmp_path / "flat.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=24, options={"crf": "0"})
        stream.width = stream.height = 32
        stream.pix_fmt = "yuv444p"
        for index, colour in enumerate(colours):
            frame = av.VideoFrame.from_ndarray(np.full((32, 32, 3), colour, np.uint8), "rgb24")
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    stream_video(path, tmp_path / "out.mp4", identity, (32, 32))
    frames, _ = decoded(tmp_path / "out.mp4")
    for frame, colour in zip(frames, colours):
        assert np.abs(frame.reshape(-1, 3).mean(0) - colour).max() < 4


def test_odd_sizes_lose_a_row_or_column(tmp_path, clip):
    def smaller(frame, index):
        return np.ascontiguousarray(frame[:31, :27])

    result = stream_video(clip, tmp_path / "odd.mp4", smaller, (27, 31))
    assert (result.width, result.height) == (26, 30)
    frames, _ = decoded(tmp_path / "odd.mp4")
    assert frames[0].shape == (30, 26, 3)


def test_rotation_is_kept_or_turned_upright_for_avi(tmp_path):
    source = tmp_path / "turned.mp4"
    pictures = make_video(source, width=48, height=32, rotation=90)
    stream_video(source, tmp_path / "out.mp4", identity, (48, 32))
    assert probe_video(tmp_path / "out.mp4").rotation == 90
    stream_video(source, tmp_path / "out.avi", identity, (48, 32))
    info = probe_video(tmp_path / "out.avi")
    assert (info.width, info.height, info.rotation) == (32, 48, 0)
    frames, _ = decoded(tmp_path / "out.avi")
    upright = np.rot90(pictures[0], 1)  # 90 degrees counterclockwise, as players show it
    assert np.abs(frames[0].astype(int) - upright).mean() < 12
    assert np.abs(frames[0].astype(int) - np.rot90(upright, 2)).mean() > 20


def test_interrupting_leaves_no_output(tmp_path, clip):
    def interrupt(frame, index):
        if index == 3:
            raise KeyboardInterrupt
        return frame

    with pytest.raises(KeyboardInterrupt):
        stream_video(clip, tmp_path / "out.mp4", interrupt, (32, 32))
    assert list(tmp_path.iterdir()) == []


def bad_input(kind, path, clip):
    if kind == "folder":
        path.mkdir()
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "noise":
        path.write_bytes(np.random.default_rng(0).bytes(5000))
    elif kind == "truncated":
        data = clip.read_bytes()
        path.write_bytes(data[: len(data) // 3])
    return path


@pytest.mark.parametrize(
    "kind, fragment",
    [
        ("missing", "does not exist"),
        ("folder", "is a folder"),
        ("empty", "not a readable video"),
        ("noise", "not a readable video"),
        ("truncated", "not a readable video|damaged"),
    ],
)
def test_unreadable_inputs(tmp_path, clip, kind, fragment):
    source = bad_input(kind, tmp_path / "in.mp4", clip)
    with pytest.raises(VideoError, match=fragment):
        stream_video(source, tmp_path / "out.mp4", identity, (32, 32))
    assert not (tmp_path / "out.mp4").exists() and not leftovers(tmp_path)


def make_faststart(path, frames=20):
    """An MP4 with its index first (as web videos are): cut short, it still opens."""
    rng = np.random.default_rng(0)  # noise: every frame ~2 kB, so half the file is ~half the frames
    with av.open(str(path), "w", options={"movflags": "faststart"}) as container:
        stream = container.add_stream("libx264", rate=24)
        stream.width = stream.height = 64
        stream.pix_fmt = "yuv420p"
        for index in range(frames):
            picture = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
            frame = av.VideoFrame.from_ndarray(picture, format="rgb24")
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    with av.open(str(path)) as container:
        return [p.pos for p in container.demux(video=0) if p.size]


def test_a_cut_video_is_damaged_not_short(tmp_path):
    whole = tmp_path / "whole.mp4"
    offsets = make_faststart(whole)
    data = whole.read_bytes()
    # Cut inside a frame (the demuxer hands a short packet on), and between two frames (it
    # simply stops): both are 20 frames in the index and fewer in the file.
    for end in (len(data) // 2, offsets[11]):
        cut = tmp_path / "cut.mp4"
        cut.write_bytes(data[:end])
        with pytest.raises(VideoError, match=r"cut\.mp4 is damaged .*frame 1[0-2]\b.* of 20"):
            stream_video(cut, tmp_path / "out.mp4", identity, (64, 64))
        assert not (tmp_path / "out.mp4").exists() and not leftovers(tmp_path)


def test_audio_only_and_bad_outputs(tmp_path, clip):
    sound = tmp_path / "sound.m4a"
    with av.open(str(sound), "w", format="mp4") as container:
        stream = container.add_stream("aac", rate=48000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), "fltp", "mono")
        frame.sample_rate, frame.pts = 48000, 0
        container.mux(stream.encode(frame))
        container.mux(stream.encode())
    with pytest.raises(VideoError, match="no video stream"):
        probe_video(sound)
    with pytest.raises(VideoError, match=r"suffix '\.flv'.*\.mp4"):
        stream_video(clip, tmp_path / "out.flv", identity, (32, 32))
    with pytest.raises(VideoError, match="does not exist"):
        stream_video(clip, tmp_path / "absent" / "out.mp4", identity, (32, 32))
    with pytest.raises(VideoError, match="is a folder"):
        stream_video(clip, tmp_path, identity, (32, 32))
    with pytest.raises(VideoError, match=r"expected uint8 \(32, 32, 3\)"):
        stream_video(clip, tmp_path / "out.mp4", lambda f, i: f[:16], (32, 32))
    assert not (tmp_path / "out.mp4").exists() and not leftovers(tmp_path)
    assert set(VIDEO_SUFFIXES) == {".mp4", ".mov", ".mkv", ".webm", ".avi"}


# --- Stylizer.stylize_video ---------------------------------------------------------------


def spy_on_frames(monkeypatch, stylizer):
    """Record (style weights, mask, reducer) of every frame the stylizer paints."""
    seen = []
    original = Stylizer._stylize_array

    def spy(self, photo, field, strength, preserve_color, reducer=None, *more):
        seen.append((field.outside.vector, field.mask, reducer))
        return original(self, photo, field, strength, preserve_color, reducer, *more)

    monkeypatch.setattr(Stylizer, "_stylize_array", spy)
    return seen


def test_stylize_video_paints_every_frame(tmp_path, clip, stylizer, monkeypatch):
    seen = spy_on_frames(monkeypatch, stylizer)
    progress = []
    result = stylizer.stylize_video(clip, tmp_path / "out.mkv", style="b",
                                    progress=lambda *a: progress.append(a))
    assert (result.frames, result.width, result.height, result.audio_streams) == (8, 32, 32, 1)
    assert progress[-1] == (8, 8) and len(seen) == 8
    assert all(reducer is seen[0][2] and reducer is not None for _, _, reducer in seen)
    frames, _ = decoded(tmp_path / "out.mkv")
    source, _ = decoded(clip)
    assert np.abs(frames[0].astype(int) - source[0]).mean() > 10  # stylized, not copied
    seen.clear()
    stylizer.stylize_video(clip, tmp_path / "plain.mp4", stabilize=False)
    assert all(reducer is None for _, _, reducer in seen)


def test_to_style_morphs_the_blend_over_the_clip(tmp_path, clip, stylizer, monkeypatch):
    seen = spy_on_frames(monkeypatch, stylizer)
    stylizer.stylize_video(clip, tmp_path / "out.mp4", style="a", to_style="c:1,b:1")
    weights = np.stack([w for w, _, _ in seen])
    t = np.arange(8)[:, None] / 7
    expected = (1 - t) * np.array([1, 0, 0]) + t * np.array([0, 0.5, 0.5])
    np.testing.assert_allclose(weights, expected, atol=1e-6)


def test_the_mask_is_drawn_upright(tmp_path, stylizer, monkeypatch):
    source = tmp_path / "turned.mp4"
    make_video(source, width=48, height=32, rotation=90)  # plays as 32 wide, 48 high
    mask = np.zeros((48, 32), np.uint8)
    mask[:, :16] = 255  # the left half of the picture as it plays
    seen = spy_on_frames(monkeypatch, stylizer)
    stylizer.stylize_video(source, tmp_path / "out.mp4", mask=mask, mask_style="c",
                           stabilize=False)
    stored = seen[0][1]
    # Players turn the stored (48 wide, 32 high) frame 90 degrees counterclockwise, which
    # takes its top to the left: the left half of the upright picture is the top half of the
    # stored frame.
    np.testing.assert_array_equal(stored, np.rot90(mask.astype(np.float32) / 255, -1))
    assert stored.shape == (32, 48) and stored[:16].min() == 1 and stored[16:].max() == 0


def test_max_size_and_odd_sizes(tmp_path, stylizer):
    source = tmp_path / "wide.mp4"
    make_video(source, width=64, height=36)
    result = stylizer.stylize_video(source, tmp_path / "out.mp4", max_size=45)
    # 64x36 at 45 px: 45x25 (25.3 rounded), then 44x24 for 4:2:0.
    assert (result.width, result.height) == (44, 24)
    with pytest.raises(ImageError, match="under 16 px"):
        stylizer.stylize_video(source, tmp_path / "tiny.mp4", max_size=20)


def test_stylize_video_errors(tmp_path, clip, stylizer):
    with pytest.raises(VideoError, match="overwrite the input"):
        stylizer.stylize_video(clip, clip)
    with pytest.raises(ConfigError, match="mask"):
        stylizer.stylize_video(clip, tmp_path / "out.mp4", mask_style="b")
    with pytest.raises(ConfigError, match="strength"):
        stylizer.stylize_video(clip, tmp_path / "out.mp4", strength=2)
    with pytest.raises(VideoError, match="does not exist"):
        stylizer.stylize_video(tmp_path / "absent.mp4", tmp_path / "out.mp4")
    assert not (tmp_path / "out.mp4").exists()


# --- animated images ------------------------------------------------------------------------


def test_a_still_animation_is_unchanged_by_stabilizing(stylizer):
    # Equal frames: zero flow, the grid stays, blending equal images changes nothing (up to
    # float rounding, which can move a value across a rounding boundary: 1 level).
    frames = [make_picture()] * 3
    from stylecbn.media.reading import LoadedImage

    loaded = LoadedImage(frames=frames, source="anim", durations=[50] * 3)
    plain = stylizer.stylize_frames(loaded, 1, stabilize=False).frames
    stable = stylizer.stylize_frames(loaded, 1).frames
    for a, b in zip(plain, stable):
        assert np.abs(a.astype(int) - b).max() <= 1


def test_masks_keep_their_meaning_when_stabilized(stylizer):
    # A white mask means "mask_style everywhere", also for shifted (grid-following) frames.
    from stylecbn.media.reading import LoadedImage

    big = make_picture(40, 80)
    frames = [np.ascontiguousarray(big[:, 20 - 2 * t : 60 - 2 * t]) for t in range(4)]
    loaded = LoadedImage(frames=frames, source="anim", durations=[50] * 4)
    white = np.full((40, 40), 255, np.uint8)
    masked = stylizer.stylize_frames(loaded, 0, mask=white, mask_style=2).frames
    direct = stylizer.stylize_frames(loaded, 2).frames
    for a, b in zip(masked, direct):
        assert np.abs(a.astype(int) - b).max() <= 1


def test_masks_keep_their_meaning_when_following_zoom_and_rotation(stylizer):
    # The same with follow="similarity": the mask is drawn into the key frame with the photo.
    import cv2

    from stylecbn.media.reading import LoadedImage

    big = make_picture(80, 80)
    frames = []
    for t in range(4):
        turn = cv2.getRotationMatrix2D((40, 40), 2.0 * t, 1.0 + 0.02 * t)
        frames.append(cv2.warpAffine(big, turn, (80, 80))[20:60, 20:60].copy())
    loaded = LoadedImage(frames=frames, source="anim", durations=[50] * 4)
    white = np.full((40, 40), 255, np.uint8)
    reducer = FlickerReducer(follow="similarity")
    masked = stylizer.stylize_frames(loaded, 0, mask=white, mask_style=2,
                                     stabilize=reducer).frames
    assert not np.allclose(reducer._anchor, np.eye(3))  # the frames were drawn in a key frame
    direct = stylizer.stylize_frames(loaded, 2,
                                     stabilize=FlickerReducer(follow="similarity")).frames
    for a, b in zip(masked, direct):
        assert np.abs(a.astype(int) - b).max() <= 1


def make_picture(h=40, w=40, seed=1):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    base = np.stack([np.sin(7 * x), np.cos(5 * y), x * y], axis=-1) * 0.5 + 0.5
    return np.clip((base + rng.normal(0, 0.03, base.shape)) * 255, 0, 255).astype(np.uint8)


class CountingReducer(FlickerReducer):
    """A FlickerReducer that counts its frames and resets."""

    def __init__(self):
        self.resets = 0
        super().__init__()  # may reset itself: counted from here on
        self.frames = self.resets = 0

    def reset(self):
        super().reset()
        self.resets += 1

    def __call__(self, photo, stylize):
        self.frames += 1
        return super().__call__(photo, stylize)


def test_a_given_flicker_reducer_is_the_one_used(stylizer, clip, tmp_path):
    from stylecbn.media.reading import LoadedImage

    loaded = LoadedImage(frames=[make_picture()] * 3, source="anim", durations=[50] * 3)
    reducer = CountingReducer()
    stylizer.stylize_frames(loaded, 1, stabilize=reducer)
    assert (reducer.frames, reducer.resets) == (3, 1)
    reducer = CountingReducer()
    stylizer.stylize_video(clip, tmp_path / "out.mp4", stabilize=reducer)
    assert (reducer.frames, reducer.resets) == (8, 1)
