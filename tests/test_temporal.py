"""FlickerReducer and restore_detail: the flicker reduction of video and animated GIFs."""

import numpy as np
import pytest

from stylecbn.applying.flicker import GRID, FlickerReducer, restore_detail, shift_for_grid


def texture(height, width, seed=0):
    """A smooth random texture in [0, 1] (optical flow needs structure to lock on to)."""
    import cv2

    rng = np.random.default_rng(seed)
    noise = rng.random((height, width, 3)).astype(np.float32)
    return np.clip(cv2.GaussianBlur(noise, (0, 0), 2.0) * 3 - 1, 0, 1)


def panned(frames, height=48, width=64, step=1):
    """Frames of a texture moving right by `step` whole pixels per frame."""
    big = texture(height, width + step * frames + 8)
    start = step * frames
    return [np.ascontiguousarray(big[:, start - step * t : start - step * t + width])
            for t in range(frames)]


def fixed(output):
    return lambda top, left: output


# --- restore_detail ---------------------------------------------------------------------


def test_restore_detail_undoes_a_loss_of_contrast_exactly():
    # A pattern at 0.25 cycles/px on a constant: halving its contrast leaves the constant (band
    # 0) alone and halves every other band, so the gains are exactly 2 and the pattern returns.
    y, x = np.mgrid[0:32, 0:48]
    pattern = 0.2 * np.cos(2 * np.pi * 0.25 * x)[..., None] * np.array([1.0, 0.5, -0.7])
    fresh = (0.5 + pattern).astype(np.float32)
    blended = (0.5 + 0.5 * pattern).astype(np.float32)
    restored = restore_detail(blended, fresh)
    assert restored.dtype == np.float32 and restored.shape == fresh.shape
    # float32 FFTs of 1.5K values: errors of a few 1e-7, far below 1e-5.
    np.testing.assert_allclose(restored, fresh, atol=1e-5)


def test_restore_detail_never_lowers_energy_and_caps_the_gain():
    fresh = texture(32, 32, seed=1)
    # Twice the contrast: 4 times the energy in every band but the constant, so every gain
    # would be 1/2 and is clipped to 1: nothing changes.
    sharper = (0.5 + 2.0 * (fresh - 0.5)).astype(np.float32)
    np.testing.assert_allclose(restore_detail(sharper, fresh), sharper, atol=1e-5)
    flat = np.full((32, 32, 3), 0.5, np.float32)
    tiny = (flat + 1e-3 * (fresh - fresh.mean())).astype(np.float32)
    restored = restore_detail(tiny, fresh, max_gain=4.0)
    # The detail can grow at most 4 times (the mean, band 0, stays).
    detail = np.abs(restored - restored.mean()).max()
    assert detail <= 4.0 * np.abs(tiny - tiny.mean()).max() * 1.01


# --- shift_for_grid -----------------------------------------------------------------------


def test_shift_for_grid_pads_to_one_size_and_crops_back():
    image = np.arange(20 * 24 * 3, dtype=np.float32).reshape(20, 24, 3)
    assert shift_for_grid(image, 0, 0) is image
    for top, left in [(1, 0), (0, 3), (2, 2)]:
        padded = shift_for_grid(image, top, left)
        assert padded.shape == (20 + GRID, 24 + GRID, 3)
        np.testing.assert_array_equal(padded[top : top + 20, left : left + 24], image)
    mask = np.random.default_rng(0).random((20, 24)).astype(np.float32)
    np.testing.assert_array_equal(shift_for_grid(mask, 3, 1)[3:23, 1:25], mask)


# --- FlickerReducer -----------------------------------------------------------------------


def test_a_still_scene_comes_out_as_the_network_made_it():
    photo = texture(40, 56)
    styled = texture(40, 56, seed=5)
    reducer = FlickerReducer()
    for _ in range(4):
        out = reducer(photo, fixed(styled))
        assert reducer.offset == (0, 0)
    assert reducer.carried > 0.45  # trusted everywhere: carry 0.5, minus nothing
    # Zero flow: the bicubic warp copies, the blend of two equal images is the image, the
    # detail gains are 1; only float32 FFT rounding remains.
    np.testing.assert_allclose(out, styled, atol=1e-5)


def test_a_scene_cut_carries_nothing_and_restarts_the_grid():
    reducer = FlickerReducer()
    for frame in panned(3):
        reducer(frame, fixed(texture(48, 64, seed=2)))
    assert reducer.carried > 0
    other = texture(48, 64, seed=9)
    fresh = texture(48, 64, seed=3)
    out = reducer(other, fixed(fresh))
    assert reducer.carried == 0.0 and reducer.offset == (0, 0)
    np.testing.assert_array_equal(out, fresh)


def test_a_new_size_starts_afresh():
    reducer = FlickerReducer()
    reducer(texture(40, 40), fixed(texture(40, 40, seed=1)))
    fresh = texture(48, 40, seed=2)
    np.testing.assert_array_equal(reducer(texture(48, 40), fixed(fresh)), fresh)
    assert reducer.carried == 0.0


def test_the_grid_follows_the_camera():
    # Content moves right 1 px per frame: a pixel at x was at x - 1, the picture has travelled
    # -t pixels, so the input is shifted by (-t) mod 4 and content keeps its grid phase.
    seen = []
    reducer = FlickerReducer()
    for frame in panned(9):
        reducer(frame, lambda top, left: seen.append((top, left)) or np.zeros((48, 64, 3), "f"))
    assert seen == [(0, (-t) % GRID) for t in range(9)]
    off = FlickerReducer(follow_grid=False)
    for frame in panned(3):
        off(frame, fixed(np.zeros((48, 64, 3), "f")))
        assert off.offset == (0, 0)


def warping_error(frames, step=1):
    """Mean squared difference of frame t and frame t-1 moved by `step` px (exact motion)."""
    return np.mean([np.mean(np.square(b[:, step:] - a[:, :-step])) for a, b in zip(frames, frames[1:])])


def test_carrying_reduces_random_flicker():
    # A "network" that returns the photo plus fresh noise per frame: pure flicker. Recursive
    # blending with a = 0.5 leaves (1 - a)^2 / (1 + a) = 1/6 of the squared frame-to-frame
    # difference of independent noise; the detail gain (at most 1/sqrt(0.5) here) can raise it
    # to at most 1/3. Half is a safe bound that per-frame output (ratio 1) cannot pass.
    rng = np.random.default_rng(0)
    frames = panned(10)
    plain = [np.clip(f + rng.normal(0, 0.1, f.shape), 0, 1).astype(np.float32) for f in frames]
    reducer = FlickerReducer(follow_grid=False)
    stable = [reducer(f, fixed(p)) for f, p in zip(frames, plain)]
    assert warping_error(stable) < 0.5 * warping_error(plain)


def test_untrusted_pixels_take_the_fresh_output():
    frames = panned(2)
    changed = frames[1].copy()
    changed[10:30, 20:40] = (changed[10:30, 20:40] + 0.5) % 1.0  # something new appears
    reducer = FlickerReducer(restore_detail=False)
    reducer(frames[0], fixed(np.zeros((48, 64, 3), "f")))
    out = reducer(changed, fixed(np.ones((48, 64, 3), "f")))
    # Inside the patch every value differs by 0.5 from the old picture: trust exp(-25) ~ 1e-11
    # wherever the flow points (unless it finds a pixel 0.5 away, which the smooth texture
    # does not have nearby).
    assert out[14:26, 24:36].min() > 0.999
    # Elsewhere the previous output (zeros) is carried at about half.
    assert 0.4 < out[40:, :16].mean() < 0.6


def test_carry_must_be_below_one():
    with pytest.raises(ValueError, match="carry"):
        FlickerReducer(carry=1.0)


# --- following zoom and rotation (follow="similarity") -------------------------------------


def similarity(scale, degrees, shift, centre):
    """3x3: a turn by `degrees` and a zoom by `scale` about `centre`, then `shift`."""
    angle = np.deg2rad(degrees)
    linear = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    offset = np.asarray(centre) + np.asarray(shift) - linear @ np.asarray(centre)
    return np.vstack([np.hstack([linear, offset[:, None]]), [0.0, 0.0, 1.0]])


def zoomed_and_turned(frames, height=64, width=80, scale=1.015, degrees=1.5,
                      shift=(0.7, 0.3)):
    """Frames of a texture seen through a camera that zooms in, turns and pans a little each
    frame, and each frame's map from its pixels to the first frame's."""
    import cv2

    big = texture(3 * height, 3 * width, seed=4)
    centre = (width / 2, height / 2)
    step = similarity(1 / scale, degrees, shift, centre)  # frame t pixel -> frame t-1 pixel
    to_first, result, maps = np.eye(3), [], []
    place = np.array([[1, 0, width], [0, 1, height], [0, 0, 1]], float)  # into the texture
    for t in range(frames):
        if t:
            to_first = to_first @ step
        matrix = (place @ to_first)[:2]
        result.append(cv2.warpAffine(big, matrix, (width, height),
                                     flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP))
        maps.append(to_first)
    return result, maps


def corner_error(matrix, expected, height=64, width=80):
    corners = np.array([[0, 0, 1], [width, 0, 1], [0, height, 1], [width, height, 1]], float).T
    return np.abs((matrix @ corners) - (expected @ corners))[:2].max()


def test_similarity_follows_zoom_and_rotation_from_a_key_frame():
    """The reducer's map from the current frame to the key frame (the first) is the camera's
    motion since then: DIS flow on this texture is good to a few tenths of a pixel and the
    fit pools thousands of pixels, while a fit that missed the zoom or the turn would be off
    by 3 to 10 px at the corners after five frames (1.5% and 1.5 degrees a frame), so 1.5 px
    tells them apart. The network gets the photo turned and zoomed about its centre by that
    map's linear part, and the grid shift of its translation."""
    from stylecbn.applying.flicker import _split_about_centre

    frames, maps = zoomed_and_turned(6)
    reducer = FlickerReducer(follow="similarity")
    given = []

    def stylize(top, left, matrix=None):
        given.append((matrix, top, left))
        return np.zeros((64, 80, 3), np.float32)

    for t, frame in enumerate(frames):
        reducer(frame, stylize)
        matrix, top, left = given[t]
        if t == 0:
            assert matrix is None and (top, left) == (0, 0)
            continue
        assert corner_error(reducer._anchor, maps[t]) < 1.5, t
        turn, shift = _split_about_centre(reducer._anchor, frame.shape)
        np.testing.assert_allclose(matrix, np.linalg.inv(turn)[:2], atol=1e-9)
        assert (left, top) == tuple(int(v) for v in np.round(shift).astype(int) % GRID)


def test_a_key_frame_gives_way_when_the_camera_has_zoomed_too_far():
    frames, _ = zoomed_and_turned(8, degrees=0.0, shift=(0.0, 0.0), scale=1.02)
    reducer = FlickerReducer(follow="similarity", key_frame_scale=1.05)
    given = []
    for frame in frames:
        reducer(frame, lambda top, left, matrix=None: given.append(matrix)
                or np.zeros((64, 80, 3), np.float32))
    # 2% a frame: frame 3 is 1.061x the key frame (past 1.05) and becomes the next one
    assert [m is None for m in given] == [True, False, False, True, False, False, True, False]


def test_following_the_camera_draws_the_output_back_where_the_photo_is():
    """A "network" that returns its input: drawn into the key frame and back, the output is
    the photo again (bicubic resampling twice: within a few levels on a smooth texture, away
    from the borders that the turn brings in from outside)."""
    frames, _ = zoomed_and_turned(4)
    reducer = FlickerReducer(follow="similarity", carry=0.0)
    from stylecbn.applying.flicker import warp_to

    for frame in frames:
        out = reducer(frame, lambda top, left, matrix=None: frame if matrix is None
                      else warp_to(frame, matrix))
    inner = (slice(12, -12), slice(12, -12))
    assert np.abs(out[inner] - frames[-1][inner]).max() < 0.05


def test_follow_must_be_known():
    with pytest.raises(ValueError, match="follow must be one of grid, similarity, rotation, none"):
        FlickerReducer(follow="affine")
    assert FlickerReducer(follow_grid=False).follow == "none"


def test_rotation_follows_the_turn_and_leaves_the_zoom_to_the_picture():
    """follow="rotation": the network's input is turned like the key frame but never zoomed
    (the map's linear part has determinant 1), and no zoom ends a key frame."""
    frames, maps = zoomed_and_turned(8, scale=1.03, degrees=1.0)
    reducer = FlickerReducer(follow="rotation")
    given = []
    for frame in frames:
        reducer(frame, lambda top, left, matrix=None: given.append(matrix)
                or np.zeros((64, 80, 3), np.float32))
    assert given[0] is None and all(m is not None for m in given[1:])  # 1.03^7 = 1.23: kept
    for t, matrix in enumerate(given[1:], 1):
        assert abs(np.linalg.det(matrix[:, :2]) - 1.0) < 1e-9
        degrees = np.degrees(np.arctan2(-matrix[1, 0], matrix[0, 0]))  # the turn it undoes
        # a fit that missed the turn reads 0 degrees (off by t); the flow reads this
        # texture's turn to about 10% here, so 30% of t tells the two apart
        assert abs(degrees - 1.0 * t) < 0.3 * t, (t, degrees)


def test_the_round_trip_check_keeps_consistent_flow_and_drops_the_rest():
    """A pan's flow comes back to where it started (the check passes away from the border
    that the pan brings in); between two unrelated pictures DIS finds no consistent flow
    and most pixels fail it."""
    reducer = FlickerReducer(round_trip=True)
    frames = panned(2, step=2)
    shape = frames[0].shape
    grays = [reducer._gray(f) for f in frames]
    map_x, map_y = reducer._source_coordinates(shape, grays[1], grays[0])
    kept = reducer._round_trip(shape, grays[1], grays[0], map_x, map_y)
    assert kept[4:-4, 8:-8].mean() > 0.95
    other = texture(48, 64, seed=9)
    gray = reducer._gray(other)
    map_x, map_y = reducer._source_coordinates(shape, gray, grays[0])
    assert reducer._round_trip(shape, gray, grays[0], map_x, map_y).mean() < 0.5
