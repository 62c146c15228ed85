"""Less flicker in stylized video, at inference: follow the camera, carry the previous output.

A feed-forward style network paints every frame on its own. Its brush texture is anchored to
the network's 4-pixel grid (two stride-2 convolutions, two 2x nearest upsamplings), not to the
picture, so when the camera moves the texture slides over the content and shimmers. Smoothing
the normalization statistics over time does not help (measured: no less flicker and a weaker
style; the statistics barely change between frames, the flicker is in the texture).
`FlickerReducer` works on every frame in four steps:

1. Motion: dense optical flow from the current photo back to the previous one (OpenCV's DIS
   flow on grayscale frames, computed at most FLOW_SIDE pixels wide and scaled up).
2. Grid: the median flow is the camera's translation; summed over frames it says where the
   picture has moved since the first frame. The photo is shifted by that amount modulo GRID
   (reflect padding, `shift_for_grid`) before the network, and the output cropped back, so the
   network's grid moves with the picture and so does its texture. On its own this removes
   about half of the flicker of a pan; zoom and rotation have no single translation to follow.
3. Carry: `out = a * warp(previous output) + (1 - a) * fresh`, with `a = carry * trust`. Trust
   compares the previous photo, warped along the flow, with the current one:
   `trust = exp(-(mean |difference| / TRUST_SCALE) ** 2)` and 0 where the source lies outside
   the previous frame, so occlusions, flow errors and lighting changes take the fresh output.
   A frame whose mean trust is below CUT_TRUST is a scene cut: nothing is carried across it
   and the grid starts again. The warp is bicubic, which blurs fine brush texture less than
   bilinear.
4. Detail: averaging two brush textures that do not line up lowers their contrast, which the
   style loss sees as a weaker style. The blend's spectrum is scaled back to the fresh output's
   energy, per colour channel in frequency bands of ring and direction (`restore_detail`),
   never down and at most by MAX_DETAIL_GAIN. What it restores is the blend's own texture,
   which moves with the picture.

The previous output is blended recursively, so each output carries a little of every earlier
frame (weights a, a^2, ...). Only the network's output is touched: blends, masks, morphs and
both normalization kinds work unchanged. benchmarks/temporal.py measures the options
(README: "Video").

References: Lai et al., "Learning Blind Video Temporal Consistency", ECCV 2018 (the warping
error); Kroeger et al., "Fast Optical Flow using Dense Inverse Search", ECCV 2016 (DIS);
Zhang, "Making Convolutional Networks Shift-Invariant Again", ICML 2019 (the grid).
"""

import functools

import numpy as np

__all__ = ["FlickerReducer", "restore_detail", "shift_for_grid", "warp_to", "DEFAULT_CARRY",
           "FOLLOW", "GRID"]

# Share of the previous output in trusted pixels (benchmarks/temporal.py chose it).
DEFAULT_CARRY = 0.5
# Mean absolute difference (0..1 RGB) of the motion-compensated photos at which trust is 1/e.
TRUST_SCALE = 0.1
# The network's total stride: its texture repeats on this grid (pixels).
GRID = 4
# A frame whose mean trust is below this is treated as a scene cut.
CUT_TRUST = 0.3
# Optical flow runs on frames at most this many pixels on the longer side.
FLOW_SIDE = 512
# The largest detail gain; the frequency bands it is set in: rings starting at these
# frequencies (cycles per pixel; below the first is left alone) split into directions.
MAX_DETAIL_GAIN = 4.0
_RING_EDGES = np.geomspace(0.02, 0.71, 12)[:-1]
ORIENTATIONS = 8
# How the network's texture follows the camera: "grid" (the median flow's translation, by whole
# pixels modulo GRID), "similarity" (zoom, rotation and translation fitted to the flow; the
# photo is turned and zoomed into a key frame's coordinates before the network, its output
# drawn back, the translation left to the grid), "rotation" (the same without the zoom),
# "none".
FOLLOW = ("grid", "similarity", "rotation", "none")
# round_trip: a pixel whose flow back and forward misses itself by more than this (plus a
# tenth of its motion) is not carried.
ROUND_TRIP_PIXELS = 0.75
# A key frame serves while the camera's zoom and turn stay within these of it; then the
# current frame becomes the next one (drawing far-zoomed or turned frames would lose
# resolution or corners). Its translation is followed by the grid, whatever its size.
KEY_FRAME_SCALE = 1.15
KEY_FRAME_DEGREES = 8.0


class FlickerReducer:
    """Stabilize stylized video frame by frame: follow the camera, carry the previous output.

    Call it once per frame, in order; it keeps the previous photo and output (memory: three
    frames) and where the picture has moved since the first frame.

    Args:
        carry: share of the previous output in pixels that are fully trusted, 0 to < 1.
        restore_detail: scale the blend's fine detail back to the fresh output's energy (step 4
            of the module docstring).
        follow_grid: shift the network's input with the camera (step 2); False is
            `follow="none"`.
        follow: how the texture follows the camera (`FOLLOW`): "grid" (step 2), "similarity"
            (zoom and rotation too: the photo is turned and zoomed into a key frame's
            coordinates, the camera's motion since it fitted to the flow), "rotation" (the
            same without the zoom), or "none".
        restore_detail and follow_grid exist to measure what each step does
        (benchmarks/temporal.py).

    Call arguments:
        photo: the input frame, (H, W, 3) float32 in [0, 1].
        stylize: a function `(top, left, matrix=None) -> output`: the network's (H, W, 3)
            float32 output for the photo shifted down by `top` and right by `left` pixels
            (0 <= both < GRID; see `shift_for_grid`) and cropped back to (H, W); with
            `matrix` (follow="similarity"), for the photo first drawn through that 2x3 map
            from input pixels to the photo's (`warp_to`, a turn and zoom about its centre,
            at its size), then shifted and cropped back.

    Returns from a call:
        The stabilized output, (H, W, 3) float32 in [0, 1]. The first frame, a frame after a
        cut and a frame of another size are the network's output as it is.

    Examples:
    >>> reducer = FlickerReducer()
    >>> outputs = [reducer(photo, lambda top, left: run(photo, top, left)) for photo in frames]
    """

    def __init__(self, carry=DEFAULT_CARRY, restore_detail=True, follow_grid=True,
                 follow="grid", key_frame_scale=KEY_FRAME_SCALE, round_trip=False):
        if not 0.0 <= carry < 1.0:
            raise ValueError(f"carry must be in [0, 1). Received: carry={carry}")
        if follow not in FOLLOW:
            raise ValueError(f"follow must be one of {', '.join(FOLLOW)}. Received: {follow!r}")
        import cv2

        self._cv2 = cv2
        self.carry = float(carry)
        self.restore_detail = bool(restore_detail)
        self.follow = follow if follow_grid else "none"
        self.follow_grid = self.follow == "grid"
        self.key_frame_scale = float(key_frame_scale)
        self.round_trip = bool(round_trip)
        self._flow = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
        self.reset()

    def reset(self):
        """Forget the previous frames (the next one starts afresh)."""
        self._previous = None  # (photo, gray, output)
        self._travel = np.zeros(2)  # (x, y) pixels the picture has moved since the start
        self._anchor = np.eye(3)  # "similarity": current frame pixel -> key frame pixel
        self.offset = (0, 0)  # (top, left) shift of the last frame
        self.carried = 0.0  # mean share of the previous output in the last frame

    def __call__(self, photo, stylize):
        photo = np.asarray(photo, np.float32)
        gray = self._gray(photo)
        previous = self._previous
        if previous is not None and previous[0].shape != photo.shape:
            self.reset()
            previous = None
        trust = None
        if previous is not None:
            map_x, map_y = self._source_coordinates(photo.shape, gray, previous[1])
            trust = self._trust(photo, previous[0], map_x, map_y)
            if self.round_trip:
                trust = trust * self._round_trip(photo.shape, gray, previous[1], map_x, map_y)
            if trust.mean() < CUT_TRUST:
                trust = None
                self._travel[:] = 0.0
                self._anchor = np.eye(3)
            else:
                self._travel += np.median(map_x - _columns(photo.shape)), np.median(
                    map_y - _rows(photo.shape)
                )
                if self.follow in ("similarity", "rotation"):
                    self._anchor = self._anchor @ self._camera(map_x, map_y, trust)
                    most_scale = self.key_frame_scale if self.follow == "similarity" else np.inf
                    if not _near_identity(self._anchor, photo.shape, most_scale):
                        self._anchor = np.eye(3)  # a new key frame
        turn = None
        if self.follow == "grid":
            left, top = (int(v) for v in np.round(self._travel).astype(int) % GRID)
        elif self.follow in ("similarity", "rotation"):
            turn, shift = _split_about_centre(self._anchor, photo.shape,
                                              zoom=self.follow == "similarity")
            left, top = (int(v) for v in np.round(shift).astype(int) % GRID)
        else:
            top = left = 0
        self.offset = (top, left)
        if turn is not None and not np.allclose(turn, np.eye(3), atol=1e-6):
            styled = self._stylized_turned(photo, stylize, turn, top, left)
        else:
            styled = np.asarray(stylize(top, left), np.float32)
        output, self.carried = styled, 0.0
        if trust is not None and self.carry > 0:
            warped = self._warp(previous[2], map_x, map_y, self._cv2.INTER_CUBIC)
            share = (self.carry * trust)[..., None]
            output = share * warped + (1.0 - share) * styled
            if self.restore_detail:
                output = restore_detail(output, styled)
            output = np.clip(output, 0.0, 1.0, out=output)
            self.carried = float(share.mean())
        self._previous = (photo, gray, output)
        return output

    def _camera(self, map_x, map_y, trust):
        """The similarity (3x3) from current to previous frame pixels that fits the flow of
        the trusted pixels best (RANSAC, on a sparse grid of them): the camera's motion."""
        cv2 = self._cv2
        height, width = map_x.shape
        step = max(1, round(np.sqrt(height * width / 4000)))
        rows, columns = np.mgrid[0:height:step, 0:width:step]
        keep = trust[rows, columns] > 0.5
        if keep.sum() < 20:
            return np.eye(3)
        source = np.stack([columns[keep], rows[keep]], -1).astype(np.float32)
        target = np.stack([map_x[rows, columns][keep], map_y[rows, columns][keep]], -1)
        matrix, _ = cv2.estimateAffinePartial2D(source, target.astype(np.float32),
                                                method=cv2.RANSAC, ransacReprojThreshold=1.0)
        if matrix is None:
            return np.eye(3)
        return np.vstack([matrix, [0.0, 0.0, 1.0]])

    def _stylized_turned(self, photo, stylize, turn, top, left):
        """The network's output for the photo turned and zoomed about its centre into the key
        frame's orientation and scale (and shifted for the grid, as "grid" does for the
        translation), drawn back in the photo's coordinates: its texture stays where the key
        frame's was."""
        cv2 = self._cv2
        height, width = photo.shape[:2]
        # key frame pixel -> photo pixel, for warpAffine's inverse map
        to_photo = np.linalg.inv(turn)[:2].astype(np.float64)
        styled = np.asarray(stylize(top, left, to_photo), np.float32)
        return cv2.warpAffine(styled, turn[:2], (width, height),
                              flags=cv2.INTER_LANCZOS4 | cv2.WARP_INVERSE_MAP,
                              borderMode=cv2.BORDER_REFLECT)

    def _gray(self, photo):
        cv2 = self._cv2
        gray = cv2.cvtColor(np.rint(photo * 255.0).astype(np.uint8), cv2.COLOR_RGB2GRAY)
        height, width = gray.shape
        scale = min(1.0, FLOW_SIDE / max(height, width))
        if scale < 1.0:
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            gray = cv2.resize(gray, size, interpolation=cv2.INTER_AREA)
        return gray

    def _source_coordinates(self, shape, gray, previous_gray):
        """For every pixel of the current frame, where it was in the previous one."""
        cv2 = self._cv2
        flow = self._flow.calc(gray, previous_gray, None)
        height, width = shape[:2]
        if flow.shape[:2] != (height, width):  # computed on shrunk frames: scale it up
            scale_x, scale_y = width / flow.shape[1], height / flow.shape[0]
            flow = cv2.resize(flow, (width, height), interpolation=cv2.INTER_LINEAR)
            flow[..., 0] *= scale_x
            flow[..., 1] *= scale_y
        return _columns(shape) + flow[..., 0], _rows(shape) + flow[..., 1]

    def _round_trip(self, shape, gray, previous_gray, map_x, map_y):
        """1 where the flow back to the previous frame and the flow forward from there agree
        (the round trip comes back within ROUND_TRIP_PIXELS, or a tenth of the motion), else
        0: occlusions and flow errors (Sundaram et al., ECCV 2010)."""
        forward_x, forward_y = self._source_coordinates(shape, previous_gray, gray)
        back_x = self._warp(forward_x, map_x, map_y, self._cv2.INTER_LINEAR)
        back_y = self._warp(forward_y, map_x, map_y, self._cv2.INTER_LINEAR)
        error = np.hypot(back_x - _columns(shape), back_y - _rows(shape))
        motion = np.hypot(map_x - _columns(shape), map_y - _rows(shape))
        return (error <= ROUND_TRIP_PIXELS + 0.1 * motion).astype(np.float32)

    def _trust(self, photo, previous_photo, map_x, map_y):
        height, width = photo.shape[:2]
        warped = self._warp(previous_photo, map_x, map_y, self._cv2.INTER_LINEAR)
        difference = np.abs(warped - photo).mean(axis=-1)
        trust = np.exp(-np.square(difference / TRUST_SCALE))
        inside = (map_x >= 0) & (map_x <= width - 1) & (map_y >= 0) & (map_y <= height - 1)
        return np.where(inside, trust, 0.0).astype(np.float32)

    def _warp(self, image, map_x, map_y, interpolation):
        cv2 = self._cv2
        return cv2.remap(image, map_x, map_y, interpolation, borderMode=cv2.BORDER_REPLICATE)


def _near_identity(matrix, shape, most_scale=KEY_FRAME_SCALE):
    """Whether a key frame still serves: scale within `most_scale` and rotation within
    KEY_FRAME_DEGREES (the translation is the grid's: any amount)."""
    scale = np.sqrt(abs(np.linalg.det(matrix[:2, :2])))
    degrees = np.degrees(np.arctan2(matrix[1, 0], matrix[0, 0]))
    return 1 / most_scale <= scale <= most_scale and abs(degrees) <= KEY_FRAME_DEGREES


def _split_about_centre(matrix, shape, zoom=True):
    """(turn, shift): `matrix` (current pixel -> key frame pixel) as a turn and zoom about the
    frame's centre (3x3; without the zoom when `zoom` is False) followed by a translation of
    `shift` (x, y) pixels."""
    height, width = shape[:2]
    centre = np.array([width / 2, height / 2])
    linear = matrix[:2, :2]
    if not zoom:
        linear = linear / np.sqrt(abs(np.linalg.det(linear)))
    turn = np.eye(3)
    turn[:2, :2] = linear
    turn[:2, 2] = centre - linear @ centre
    shift = matrix[:2, :2] @ centre + matrix[:2, 2] - centre
    return turn, shift


def warp_to(image, matrix):
    """`image` drawn through a 2x3 map from output pixels to its own (bicubic, reflected at
    the borders), at its own size: the network's input for `follow="similarity"`."""
    import cv2

    height, width = image.shape[:2]
    return cv2.warpAffine(image, np.asarray(matrix, np.float64), (width, height),
                          flags=cv2.INTER_LANCZOS4 | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REFLECT)


def shift_for_grid(image, top, left):
    """Reflect-pad an (H, W, ...) array for a grid shift: `top` rows above and GRID - top below,
    `left` columns before and GRID - left after (nothing at all for (0, 0)).

    One padded size for every nonzero shift keeps compiled inference at two input sizes.
    Crop the result back with `[top:top + H, left:left + W]`.
    """
    if top == 0 and left == 0:
        return image
    pad = [(top, GRID - top), (left, GRID - left)] + [(0, 0)] * (image.ndim - 2)
    return np.pad(image, pad, mode="reflect")


def _columns(shape):
    return np.broadcast_to(np.arange(shape[1], dtype=np.float32)[None, :], shape[:2])


def _rows(shape):
    return np.broadcast_to(np.arange(shape[0], dtype=np.float32)[:, None], shape[:2])


@functools.lru_cache(maxsize=4)
def _bands(height, width):
    """Band of every rfft2 coefficient of an (height, width) image, and the number of bands.

    Band 0 holds the lowest frequencies (below 0.02 cycles per pixel: colour and shading);
    above it, ORIENTATIONS directions times 11 log-spaced rings.
    """
    fy = np.fft.fftfreq(height)[:, None]
    fx = np.fft.rfftfreq(width)[None, :]
    ring = np.digitize(np.hypot(fx, fy), _RING_EDGES)
    direction = (np.mod(np.arctan2(fy, fx), np.pi) / np.pi * ORIENTATIONS).astype(int)
    band = np.where(ring == 0, 0, (ring - 1) * ORIENTATIONS + np.minimum(direction, ORIENTATIONS - 1) + 1)
    return band.ravel(), len(_RING_EDGES) * ORIENTATIONS + 1


def restore_detail(blended, fresh, max_gain=MAX_DETAIL_GAIN):
    """Scale `blended`'s spectrum up to `fresh`'s energy, per channel, ring and direction.

    In every frequency band but the lowest (colour and shading stay as blended) and in every
    channel, the Fourier coefficients of `blended` are multiplied by
    `sqrt(energy(fresh) / energy(blended))`, clipped to [1, max_gain]. The bands are rings of
    frequency split by direction: brush strokes have a direction, and averaging strokes that do
    not line up loses energy in their directions, not evenly.

    Args:
        blended, fresh: (H, W, C) float32 images of one size.
        max_gain: the largest gain.

    Returns:
        (H, W, C) float32: `blended` with its detail energy restored (not clipped).
    """
    height, width = blended.shape[:2]
    bands, count = _bands(height, width)
    spectrum = np.fft.rfft2(blended, axes=(0, 1))
    reference = np.fft.rfft2(fresh, axes=(0, 1))
    gains = []
    for channel in range(blended.shape[-1]):
        have = np.bincount(bands, np.abs(spectrum[..., channel].ravel()) ** 2, count)
        want = np.bincount(bands, np.abs(reference[..., channel].ravel()) ** 2, count)
        # Bands that hold only float rounding (1e-7 of the energy) keep gain 1.
        floor = 1e-10 * (have.sum() + want.sum()) + 1e-30
        gain = np.clip(np.sqrt((want + floor) / (have + floor)), 1.0, max_gain)
        gain[0] = 1.0
        gains.append(gain[bands].reshape(spectrum.shape[:2]))
    spectrum *= np.stack(gains, axis=-1)
    return np.fft.irfft2(spectrum, s=(height, width), axes=(0, 1)).astype(np.float32)
