"""Video in and out: decode, change and encode frame by frame, with the audio copied.

`probe_video` says what a file holds; `stream_video` decodes its video stream one frame at a
time, hands every frame (uint8 RGB, as stored) to a function and encodes what comes back,
while the audio packets go into the output unchanged (copied, not re-encoded). Memory does not
grow with the clip's length: a few frames are alive at a time, plus the encoder's look-ahead.

Kept from the input: every frame with its timestamp, in the input's time base (so the frame
count, frame rate and timing, variable frame rates included; AVI holds only a constant rate, so
there each frame goes on the next free tick of the average rate), the rotation flag (phone
videos stored sideways play upright; AVI has no such flag, so there the frames are turned
upright), the pixel aspect ratio and every audio stream. Dropped: subtitles, data streams and
chapters.

Written (chosen by the output's suffix): .mp4, .mov and .mkv as H.264 (CRF 18, visually
lossless for most content), .webm as VP9 (CRF 32), .avi as MPEG-4 Part 2 (quantizer 3); the
pictures as 8-bit 4:2:0 BT.709, which every player decodes. 4:2:0 needs an even width and
height: an odd one loses its last column or row (cropped, never stretched). An audio codec
that the output container cannot hold (AAC in WebM, Opus in AVI) is an error that names a
container that can (.mkv holds them all).

The output is written to a temporary file beside the destination and renamed into place when
complete, so an error or Ctrl-C leaves no partial file.
"""

import contextlib
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from stylecbn.errors import VideoError
from stylecbn.fileio import atomic_path

__all__ = ["VIDEO_SUFFIXES", "VideoInfo", "VideoResult", "is_video", "probe_video", "stream_video"]

# Encoder and options by output suffix. x264 looks 10 frames ahead instead of its usual 40:
# the frames it holds are memory that grows with the frame size (several copies of each at
# 4K), and quality at a fixed CRF hardly depends on it.
_H264 = ("libx264", {"crf": "18", "preset": "medium", "rc-lookahead": "10"})
_ENCODERS = {
    ".mp4": _H264,
    ".mov": _H264,
    ".mkv": _H264,
    ".webm": ("libvpx-vp9", {"crf": "32", "b": "0", "deadline": "good", "cpu-used": "4",
                             "row-mt": "1"}),
    # Quantizer 3 (ffmpeg's -q:v 3): FFmpeg takes it as a quality in lambda units.
    ".avi": ("mpeg4", {"flags": "+qscale", "global_quality": str(3 * 118)}),
}
VIDEO_SUFFIXES = tuple(_ENCODERS)
# AVI stores one frame per tick of 1/frame rate (no free timestamps) and has no rotation flag:
# its frames are turned upright before encoding.
_AVI = ".avi"
_FALLBACK_RATE = Fraction(25)
# What every output frame is: 8-bit 4:2:0, BT.709 colours in limited ("MPEG") range.
_PIXEL_FORMAT = "yuv420p"
_BT709 = 1  # AVCOL_SPC_BT709 = AVCOL_PRI_BT709 = AVCOL_TRC_BT709
_LIMITED_RANGE = 1  # AVCOL_RANGE_MPEG


def is_video(path):
    """Whether `path` names a video file by its suffix (.mp4, .mov, .mkv, .webm, .avi)."""
    return Path(str(path)).suffix.lower() in VIDEO_SUFFIXES


@dataclass(frozen=True)
class VideoInfo:
    """What `probe_video` found.

    Attributes:
        source: the file, as named in messages.
        width, height: the stored frame size (before rotation).
        frames: the number of frames (from the container, else by counting packets).
        frame_rate: the average frame rate.
        duration: seconds.
        rotation: degrees counterclockwise that players turn the stored frames (0, 90, 180,
            270); the display size swaps width and height at 90 and 270.
        audio_codecs: the codec of each audio stream, in order.
    """

    source: str
    width: int
    height: int
    frames: int
    frame_rate: Fraction
    duration: float
    rotation: int
    audio_codecs: tuple[str, ...]

    @property
    def display_size(self):
        """(width, height) as players show it."""
        if self.rotation % 180:
            return self.height, self.width
        return self.width, self.height


@dataclass(frozen=True)
class VideoResult:
    """What `stream_video` wrote: frame count and size, frame rate, audio streams, seconds."""

    output: str
    frames: int
    width: int
    height: int
    frame_rate: float
    audio_streams: int
    seconds: float

    @property
    def frames_per_second(self):
        """Processing speed: frames written per second of wall time."""
        return self.frames / self.seconds if self.seconds > 0 else 0.0


def _av():
    import av

    return av


@contextlib.contextmanager
def _open_input(source):
    av = _av()
    name = str(source)
    path = Path(name)
    if not path.exists():
        raise VideoError(f"{name} does not exist")
    if path.is_dir():
        raise VideoError(f"{name} is a folder, not a video")
    try:
        container = av.open(name, metadata_errors="ignore")
    except (av.FFmpegError, UnicodeDecodeError) as exc:
        raise _unreadable(name, exc) from exc
    try:
        if not container.streams.video:
            raise VideoError(f"{name} has no video stream (is it an audio file?)")
        yield container
    finally:
        container.close()


def _reason(exc):
    """FFmpeg's words without the file name (which may be our temporary file's)."""
    return getattr(exc, "strerror", None) or str(exc).strip() or type(exc).__name__


def _unreadable(name, exc):
    return VideoError(
        f"{name} is not a readable video ({_reason(exc)}); it may be damaged, incomplete or in a "
        "format FFmpeg cannot read: re-export or re-download it"
    )


def _frame_rate(stream):
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate:
            return Fraction(rate)
    return _FALLBACK_RATE


def probe_video(source):
    """Read a video's size, frame count, frame rate, duration, rotation and audio codecs.

    Args:
        source: a path.

    Returns:
        A `VideoInfo`.

    Raises:
        VideoError: the file is missing, unreadable, damaged or has no video stream.
    """
    av = _av()
    name = str(source)
    with _open_input(source) as container:
        stream = container.streams.video[0]
        frames = stream.frames
        rotation = 0
        try:
            first = next(container.decode(stream), None)
            if first is None:
                raise VideoError(f"{name} has a video stream without frames")
            rotation = int(round(first.rotation)) % 360
            if not frames:  # the container does not say (Matroska, WebM): count packets
                container.seek(0)
                frames = sum(1 for packet in container.demux(stream) if packet.size)
        except av.FFmpegError as exc:
            raise _unreadable(name, exc) from exc
        if stream.duration is not None and stream.time_base:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / av.time_base
        else:
            duration = frames / float(_frame_rate(stream))
        return VideoInfo(
            source=name,
            width=stream.codec_context.width,
            height=stream.codec_context.height,
            frames=int(frames),
            frame_rate=_frame_rate(stream),
            duration=duration,
            rotation=rotation,
            audio_codecs=tuple(s.codec_context.name for s in container.streams.audio),
        )


def stream_video(source, dest, process, size, *, info=None, progress=None):
    """Decode `source`, pass every frame through `process`, encode the results into `dest`.

    Args:
        source: the input video (a path).
        dest: the output path; its suffix picks the container and codec (VIDEO_SUFFIXES).
        process: a function `(frame, index) -> frame`; it gets (H, W, 3) uint8 RGB frames as
            stored (not rotated) and returns uint8 RGB frames of `size`.
        size: (width, height) of what `process` returns; an odd side is cropped by one pixel.
        info: the input's `VideoInfo` if the caller has probed it already.
        progress: optional `callback(frames_done, frames_total)`, called after every frame.

    Returns:
        A `VideoResult`.

    Raises:
        VideoError: unreadable or damaged input, an unknown output suffix, an audio codec the
            output container cannot hold, a destination that cannot be written, or frames
            from `process` of another size. The destination is then left untouched.
    """
    av = _av()
    started = time.perf_counter()
    name, dest = str(source), Path(dest)
    _check_destination(dest)
    codec, options = _encoder_for(dest)
    size = (int(size[0]), int(size[1]))
    even = (size[0] - size[0] % 2, size[1] - size[1] % 2)
    if min(even) < 2:
        raise VideoError(f"cannot write a {size[0]}x{size[1]} video; make it larger")
    info = info or probe_video(source)
    with _open_input(source) as container:
        video = container.streams.video[0]
        video.thread_type = "AUTO"
        audio = list(container.streams.audio)
        try:
            with atomic_path(dest) as tmp:
                output = _open_output(tmp, dest)
                try:
                    encoder = _add_video_stream(output, codec, options, video, info, even)
                    copies = _add_audio_streams(output, audio, dest, name)
                    written = _transcode(
                        container, video, audio, output, encoder, copies, process, size, even,
                        info, progress,
                    )
                except BaseException:
                    # Already failing (or interrupted): closing must not replace that error.
                    with contextlib.suppress(Exception):
                        output.close()
                    raise
                output.close()  # writes the trailer; its errors are write errors
        except PermissionError as exc:
            raise VideoError(f"cannot write {dest}: permission denied in {dest.parent}") from exc
        except av.FFmpegError as exc:
            raise VideoError(f"cannot write {dest}: {_reason(exc)}") from exc
        except OSError as exc:
            raise VideoError(f"cannot write {dest}: {exc.strerror or exc}") from exc
    return VideoResult(
        output=str(dest),
        frames=written,
        width=even[0],
        height=even[1],
        frame_rate=float(info.frame_rate),
        audio_streams=len(audio),
        seconds=time.perf_counter() - started,
    )


def _encoder_for(dest):
    suffix = dest.suffix.lower()
    if suffix not in _ENCODERS:
        raise VideoError(
            f"cannot tell the video format of {dest} from its suffix {suffix or '(none)'!r}; "
            f"use one of: {', '.join(VIDEO_SUFFIXES)}"
        )
    codec, options = _ENCODERS[suffix]
    return codec, dict(options)


def _check_destination(dest):
    if dest.is_dir():
        raise VideoError(f"cannot write {dest}: it is a folder")
    if not dest.parent.is_dir():
        raise VideoError(f"cannot write {dest}: the folder {dest.parent} does not exist")


def _open_output(tmp, dest):
    av = _av()
    # AVI has no timestamps to shift: shifting everything for AAC's negative start (as FFmpeg
    # does by default) would move every frame by part of a tick and leave a gap after the first.
    options = {"avoid_negative_ts": "disabled"} if dest.suffix.lower() == _AVI else {}
    try:
        return av.open(str(tmp), "w", container_options=options)
    except av.FFmpegError as exc:
        raise VideoError(f"cannot write {dest}: {_reason(exc)}") from exc


def _add_video_stream(output, codec, options, video, info, size):
    avi = _is_avi(output)
    width, height = size[::-1] if avi and info.rotation % 180 else size
    stream = output.add_stream(codec, rate=info.frame_rate, options=options)
    stream.width, stream.height = width, height
    stream.pix_fmt = _PIXEL_FORMAT
    context = stream.codec_context
    # Every frame keeps its own timestamp in the input's time base, which holds them all
    # exactly (variable rates included); the encoder would otherwise count in 1/average rate
    # and round close frames onto one tick.
    stream.time_base = context.time_base = 1 / info.frame_rate if avi else video.time_base
    context.colorspace = context.color_primaries = context.color_trc = _BT709
    context.color_range = _LIMITED_RANGE
    if video.sample_aspect_ratio:
        context.sample_aspect_ratio = video.sample_aspect_ratio
    if info.rotation and not avi:
        stream.set_display_rotation(info.rotation)
    return stream


def _is_avi(output):
    return output.name.lower().endswith(_AVI)


def _add_audio_streams(output, audio, dest, name):
    copies = {}
    for stream in audio:
        codec = stream.codec_context.name
        if codec not in output.supported_codecs:
            raise VideoError(
                f"cannot copy the {codec} audio of {name} into {dest}: a {dest.suffix} file "
                f"cannot hold {codec}; write .mkv (holds any audio) or "
                f"{_suggested_suffix(codec)} instead"
            )
        copies[stream.index] = output.add_stream_from_template(stream)
    return copies


def _suggested_suffix(codec):
    return ".webm" if codec in ("opus", "vorbis") else ".mp4"


def _transcode(container, video, audio, output, encoder, copies, process, size, even, info,
               progress):
    """The decode -> process -> encode loop; returns the number of frames written."""
    av = _av()
    avi = _is_avi(output)
    turns = info.rotation // 90 if avi else 0
    written, last_pts, read = 0, None, 0
    packets = container.demux(video, *audio)
    while True:
        try:  # input errors are reported as a damaged input, output errors as write errors
            packet = next(packets, None)
            if packet is None:
                break
            # Every stored frame counts, an empty one too; not the flush packet at the end.
            if packet.stream.type == "video" and (packet.size or packet.pts is not None):
                read += 1
                if packet.is_corrupt:  # FFmpeg flags a frame that the file ends inside
                    raise _damaged(info.source, read, video.frames, "the file ends inside it")
            frames = [] if packet.stream.type == "audio" else packet.decode()
        except av.FFmpegError as exc:
            raise _damaged(info.source, written + 1, video.frames, _reason(exc)) from exc
        if packet.stream.type == "audio":
            if packet.dts is not None and packet.size:
                packet.stream = copies[packet.stream.index]
                output.mux(packet)
            continue
        for frame in frames:
            result = _checked_frame(process(frame.to_ndarray(format="rgb24"), written), size,
                                    written, info.source)
            picture = np.ascontiguousarray(np.rot90(result[: even[1], : even[0]], turns))
            out = av.VideoFrame.from_ndarray(picture, format="rgb24")
            out = out.reformat(
                format=_PIXEL_FORMAT, dst_colorspace="itu709", dst_color_range=_LIMITED_RANGE
            )
            pts = _timestamp(frame, encoder, avi, info)
            if pts is None or (last_pts is not None and pts <= last_pts):
                pts = 0 if last_pts is None else last_pts + 1
            out.pts, out.time_base, last_pts = pts, encoder.time_base, pts
            output.mux(encoder.encode(out))
            written += 1
            if progress is not None:
                progress(written, max(info.frames, written))
    output.mux(encoder.encode(None))
    if _counts_frames(container) and read < video.frames:  # cut between two frames
        raise _damaged(info.source, read + 1, video.frames, "the file ends before it")
    if written == 0:
        raise VideoError(f"{info.source} has a video stream without frames")
    return written


def _damaged(name, frame, frames, reason):
    of = f" of {frames}" if frames else ""
    return VideoError(
        f"{name} is damaged at frame {frame}{of} ({reason}); it may be incomplete: re-export "
        "or re-download it"
    )


def _counts_frames(container):
    """Whether the container's frame count is a count of the stored frames (MP4 and MOV
    index every frame; AVI's count includes the ticks that hold no frame)."""
    return "mp4" in container.format.name.split(",")


def _timestamp(frame, encoder, avi, info):
    """The output timestamp of a decoded frame, in the encoder's time base."""
    if frame.pts is None or frame.time_base is None:
        return None
    if avi:  # one frame per tick
        return int(round(frame.pts * frame.time_base * info.frame_rate))
    return int(round(frame.pts * frame.time_base / encoder.time_base))


def _checked_frame(result, size, index, name):
    result = np.asarray(result)
    width, height = size
    if result.dtype != np.uint8 or result.shape != (height, width, 3):
        raise VideoError(
            f"frame {index} of {name} was processed into {result.dtype} {result.shape}; "
            f"expected uint8 {(height, width, 3)} (does the video change size mid-stream?)"
        )
    return np.ascontiguousarray(result)
