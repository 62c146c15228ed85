"""`stylecbn serve` in a real browser: Debian's headless Chromium driven by Playwright.

The page is served by uvicorn on a free port with a tiny random-weights model, so each
preview takes milliseconds. The model uses batch normalization: its statistics are fixed at
inference, so a pixel depends only on the photo and style weights within its receptive
field, and a painted region provably leaves the far side of the picture alone (with
instance normalization every pixel feels the whole picture's statistics).

What the page shows is compared, pixel for pixel, with the `Stylizer` call it stands for:
the answers are PNG (lossless) and the browser draws an untagged PNG onto a canvas without
colour conversion, so they must be equal exactly.

Set STYLECBN_SCREENSHOT=docs/images/serve.png to write README's screenshot (taken by
`test_built_in_model_and_readme_screenshot`).
"""

import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("starlette", reason='the web extra is not installed: pip install -e ".[dev]"')
playwright_api = pytest.importorskip(
    "playwright.sync_api", reason='Playwright is not installed: pip install -e ".[dev]"'
)

from serve_helpers import STYLE_NAMES, decode, running_server, save_tiny_model  # noqa: E402

from stylecbn.model.saving import default_model_path  # noqa: E402
from stylecbn.serve import UploadLimits, create_app  # noqa: E402
from stylecbn.media.sample import sample_photo  # noqa: E402
from stylecbn.applying.stylize import Stylizer  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    # a fake camera (a moving test pattern) that the page may use without asking
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
]
if not Path(CHROMIUM).is_file():
    pytest.skip(
        f"no browser at {CHROMIUM}: install Debian's chromium (apt-get install chromium; "
        ".ci/run does it where apt-get can)",
        allow_module_level=True,
    )

PHOTO = sample_photo(180, 120)  # under the 384 px preview size: previews keep its size
# Small enough for the photo, too small for LARGE (the too-large message test).
LIMITS = UploadLimits(max_pixels=200_000)
LARGE = sample_photo(600, 400)


@pytest.fixture(scope="module")
def stylizer(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "tiny.keras"
    return Stylizer(save_tiny_model(path, normalization="batch"))


@pytest.fixture(scope="module")
def app(stylizer):
    return create_app(stylizer, LIMITS)


@pytest.fixture(scope="module")
def server(app):
    with running_server(app) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, server):
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(60_000)
    page.goto(server)
    page.wait_for_selector("#app[data-ready='true']")
    yield page
    context.close()


@pytest.fixture
def photo_file(tmp_path):
    path = tmp_path / "garden.png"
    Image.fromarray(PHOTO).save(path)
    return path


# --- page helpers ---------------------------------------------------------------------------


def wait_for_preview(page):
    """Wait until no preview is scheduled and the newest one asked for has been shown.

    Every control that changes the picture marks the page pending (data-pending) as it
    schedules its debounced preview; the answer to the newest request clears it.
    """
    page.wait_for_function(
        "() => { const a = document.getElementById('app').dataset;"
        " return a.pending === 'false' && a.shown === a.requested; }"
    )


def upload(page, path):
    page.set_input_files("#file", str(path))
    wait_for_preview(page)


def canvas_pixels(page, script):
    """RGBA pixels of what `script` draws, read back with getImageData."""
    width, height, data = page.evaluate(script)
    return np.array(data, dtype=np.uint8).reshape(height, width, 4)


def preview_pixels(page):
    pixels = canvas_pixels(
        page,
        """() => {
            const image = document.getElementById('preview');
            const canvas = document.createElement('canvas');
            canvas.width = image.naturalWidth;
            canvas.height = image.naturalHeight;
            const context = canvas.getContext('2d');
            context.drawImage(image, 0, 0);
            const data = context.getImageData(0, 0, canvas.width, canvas.height).data;
            return [canvas.width, canvas.height, Array.from(data)];
        }""",
    )
    return pixels[..., :3]


def mask_pixels(page):
    pixels = canvas_pixels(
        page,
        """() => {
            const mask = document.getElementById('mask');
            const data = mask.getContext('2d').getImageData(0, 0, mask.width, mask.height).data;
            return [mask.width, mask.height, Array.from(data)];
        }""",
    )
    assert (pixels[..., 3] == 255).all()  # opaque: the PNG the page sends is exactly this
    assert (pixels[..., 0] == pixels[..., 1]).all() and (pixels[..., 1] == pixels[..., 2]).all()
    return pixels[..., 0]


def mask_box(page):
    """The painting canvas's box on screen (scrolled into view: the mouse paints there)."""
    page.locator("#mask").scroll_into_view_if_needed()
    return page.locator("#mask").bounding_box()


def card(page, index):
    return page.locator(f"#gallery li[data-index='{index}']")


def weights(page, blend="outside"):
    """{style name: shown percentage} of a blend's mix list."""
    rows = page.locator(f"ul.weights[data-blend='{blend}'] li")
    return {
        rows.nth(i).locator(".name").inner_text(): rows.nth(i).locator("output").inner_text()
        for i in range(rows.count())
    }


def expected(stylizer, **options):
    return np.asarray(stylizer.stylize(PHOTO, max_size=384, **options))


# --- tests ----------------------------------------------------------------------------------


def test_the_gallery_shows_every_style_with_its_thumbnail(page):
    cards = page.locator("#gallery li")
    assert cards.count() == len(STYLE_NAMES)
    for index, name in enumerate(STYLE_NAMES):
        assert card(page, index).locator(".name").inner_text() == f"{index} {name}"
    assert card(page, 0).locator(".credit").inner_text() == "Dots, test painter, 2024"
    page.wait_for_function(
        "() => [...document.querySelectorAll('#gallery img')]"
        ".every((image) => image.complete && image.naturalWidth === 128)"
    )
    assert weights(page) == {"red_dots": "100%"}  # style 0 until one is picked


def test_upload_pick_and_mix_styles(page, stylizer, photo_file):
    upload(page, photo_file)
    first = preview_pixels(page)
    np.testing.assert_array_equal(first, expected(stylizer, style=0))

    card(page, 1).locator(".use").click()
    wait_for_preview(page)
    second = preview_pixels(page)
    np.testing.assert_array_equal(second, expected(stylizer, style=1))
    assert np.abs(second.astype(int) - first).mean() > 5  # the picture visibly changed
    assert weights(page) == {"blue_waves": "100%"}

    card(page, 2).locator(".add").click()
    wait_for_preview(page)
    assert weights(page) == {"blue_waves": "50%", "green_glass": "50%"}
    np.testing.assert_array_equal(preview_pixels(page), expected(stylizer, style="1:1,2:1"))

    page.locator("ul.weights[data-blend='outside'] li[data-index='2'] input").fill("25")
    wait_for_preview(page)
    assert weights(page) == {"blue_waves": "80%", "green_glass": "20%"}
    np.testing.assert_array_equal(preview_pixels(page), expected(stylizer, style="1:100,2:25"))

    page.locator("#strength").fill("40")
    page.locator("#preserve-color").check()
    wait_for_preview(page)
    np.testing.assert_array_equal(
        preview_pixels(page),
        expected(stylizer, style="1:100,2:25", strength=0.4, preserve_color=True),
    )


def test_painting_a_mask_changes_only_that_region(page, stylizer, photo_file):
    upload(page, photo_file)
    before = preview_pixels(page).astype(int)
    page.locator("input[name='target'][value='inside']").check()
    card(page, 2).locator(".use").click()  # the painted region's mix: green_glass
    assert weights(page, "inside") == {"green_glass": "100%"}
    page.locator("#brush-size").fill("30")

    # Paint a stroke across the left third of the picture, in screen coordinates.
    box = mask_box(page)
    scale = box["width"] / PHOTO.shape[1]
    y = box["y"] + 60 * scale
    page.mouse.move(box["x"] + 20 * scale, y)
    page.mouse.down()
    for x in range(20, 61, 5):
        page.mouse.move(box["x"] + x * scale, y)
    page.mouse.up()
    wait_for_preview(page)

    mask = mask_pixels(page)
    painted = mask > 0
    # A 30 px brush (radius 15) along y = 60 from x = 20 to 60 paints within 15 px of it.
    rows, cols = np.nonzero(painted)
    assert rows.min() >= 60 - 15 and rows.max() <= 60 + 15
    assert cols.min() >= 20 - 15 and cols.max() <= 60 + 15
    assert (mask[55:66, 25:56] == 255).all()  # full strength near the stroke's middle

    after = preview_pixels(page).astype(int)
    np.testing.assert_array_equal(after, expected(stylizer, style=0, mask=mask, mask_style=2))
    change = np.abs(after - before).max(axis=-1)
    # Inside the paint the style is another one: the picture visibly changes there (the
    # bound only rules out "nothing happened"; the exact check above says what it became).
    assert change[mask == 255].mean() > 5
    # Far from it, nothing changes. Each output pixel sees input within the network's
    # receptive field: 4 (9x9 conv) + 1 + 2 (two stride-2 3x3 convs) + 10 * 4 (ten 3x3 convs
    # at 1/4 scale) + 2 * 2 + 1 * 2 (3x3 convs after each 2x nearest upsampling, with
    # their one-pixel upsampling slack) + 4 (9x9 conv) = 58 px, under 64. Batch
    # normalization at inference uses its fixed moving statistics, so nothing else couples
    # distant pixels. Float summation order may still flip a final rounding: 1 level.
    far = cols.max() + 64
    assert far < PHOTO.shape[1] - 30  # the test keeps a strip to look at
    assert change[:, far:].max() <= 1


def test_download_renders_the_full_size_picture(page, stylizer, tmp_path):
    big = sample_photo(450, 300)  # larger than the preview: the download is larger
    path = tmp_path / "terrace.jpg"
    Image.fromarray(big).save(path, quality=95)
    upload(page, path)
    assert page.evaluate("document.getElementById('preview').naturalWidth") == 384
    card(page, 1).locator(".use").click()
    wait_for_preview(page)

    page.locator("#max-size").fill("0")
    with page.expect_download() as info:
        page.locator("#download").click()
    assert info.value.suggested_filename == "terrace_stylized.png"
    saved = tmp_path / "out.png"
    info.value.save_as(saved)
    with Image.open(saved) as image:
        assert image.format == "PNG" and image.size == (450, 300)
        reference = stylizer.stylize(str(path), style=1, max_size=0)
        np.testing.assert_array_equal(np.asarray(image), np.asarray(reference))

    page.locator("#max-size").fill("200")
    page.locator("#format").select_option("jpeg")
    with page.expect_download() as info:
        page.locator("#download").click()
    assert info.value.suggested_filename == "terrace_stylized.jpg"
    info.value.save_as(tmp_path / "out.jpg")
    with Image.open(tmp_path / "out.jpg") as image:
        assert image.format == "JPEG" and image.size == (200, 133)


def test_a_corrupt_upload_is_explained(page, photo_file):
    page.set_input_files(
        "#file",
        files=[{"name": "holiday.jpg", "mimeType": "image/jpeg", "buffer": b"\xff\xd8junk"}],
    )
    error = page.locator("#error")
    error.wait_for(state="visible")
    assert "holiday.jpg is not a readable image" in error.inner_text()
    assert page.locator("#stage").is_hidden()
    upload(page, photo_file)  # a good photo afterwards clears the message
    assert error.is_hidden()


def test_a_too_large_upload_is_explained(page, tmp_path):
    path = tmp_path / "huge.png"
    Image.fromarray(LARGE).save(path)
    page.set_input_files("#file", str(path))
    error = page.locator("#error")
    error.wait_for(state="visible")
    text = error.inner_text()
    assert "huge.png is 600x400 (0.24 megapixels)" in text and "up to 0.2 megapixels" in text


def test_a_newer_preview_wins_over_a_slower_older_one(page, stylizer, photo_file):
    upload(page, photo_file)
    # Hold back the answer to the next preview request for 1.5 s, as if the model were slow.
    page.evaluate(
        """() => {
            const fetch = window.fetch.bind(window);
            let delayed = false;
            window.fetch = async (url, options) => {
                const response = await fetch(url, options);
                if (url === '/api/stylize' && !delayed) {
                    delayed = true;
                    await new Promise((resolve) => setTimeout(resolve, 1500));
                }
                return response;
            };
        }"""
    )
    card(page, 1).locator(".use").click()
    page.wait_for_timeout(400)  # past the debounce: request 1 is in flight and held back
    card(page, 2).locator(".use").click()
    wait_for_preview(page)
    page.wait_for_timeout(2000)  # the held-back older answer arrives now, and is ignored
    np.testing.assert_array_equal(preview_pixels(page), expected(stylizer, style=2))
    assert page.locator("#error").is_hidden()


def boxes(page):
    """Where the picture, the controls and the gallery are, and how wide the page is."""
    return page.evaluate(
        """() => {
            const box = (id) => {
                const r = document.getElementById(id).getBoundingClientRect();
                return {top: r.top, bottom: r.bottom, left: r.left, right: r.right,
                        width: r.width};
            };
            return {stage: box('stage'), picture: box('picture'), strength: box('strength'),
                    download: box('download'), gallery: box('gallery-panel'),
                    page_width: document.documentElement.scrollWidth,
                    window: {width: innerWidth, height: innerHeight}};
        }"""
    )


def in_view(box, window):
    return box["top"] >= 0 and box["bottom"] <= window["height"] and box["left"] >= 0 \
        and box["right"] <= window["width"]


@pytest.mark.parametrize("width, height", [(1280, 860), (1920, 1080)])
def test_picture_controls_and_gallery_stay_in_view(browser, server, photo_file, width, height):
    """On common screens the gallery starts above the fold, and choosing a style (from the
    gallery's last card) leaves the picture and the sliders where they were, in view."""
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    page.set_default_timeout(60_000)
    page.goto(server)
    page.wait_for_selector("#app[data-ready='true']")
    upload(page, photo_file)
    before = boxes(page)
    window = before["window"]
    assert before["gallery"]["top"] < 0.5 * window["height"]
    for name in ("stage", "strength", "download"):
        assert in_view(before[name], window), (name, before[name])
    card(page, len(STYLE_NAMES) - 1).locator(".use").click()
    wait_for_preview(page)
    after = boxes(page)
    for name in ("stage", "strength", "download"):
        assert in_view(after[name], window), (name, after[name])
    assert after["page_width"] <= window["width"]
    context.close()


def after_resize(page, width):
    """Wait until the window is `width` wide and its resize handler has run: a rendering
    update runs resize handlers before animation-frame callbacks, so two frames after the new
    width (not a fixed wait, which a loaded machine may outlast)."""
    page.wait_for_function(f"() => innerWidth === {width}")
    page.evaluate("() => new Promise((done) => requestAnimationFrame(() => "
                  "requestAnimationFrame(done)))")


def test_the_picture_follows_a_narrowing_window(page, photo_file):
    """After a photo is loaded, narrowing the window shrinks the picture with it: the page
    never scrolls sideways, and widening gives the room back."""
    upload(page, photo_file)
    wide = boxes(page)
    for width in (700, 420):
        page.set_viewport_size({"width": width, "height": 900})
        after_resize(page, width)
        narrow = boxes(page)
        assert narrow["page_width"] <= width, narrow
        assert narrow["stage"]["right"] <= narrow["picture"]["right"] <= width, narrow
    page.set_viewport_size({"width": 1280, "height": 900})
    after_resize(page, 1280)
    assert boxes(page)["stage"]["width"] == pytest.approx(wide["stage"]["width"], abs=1)


def test_a_bad_max_size_is_named_by_its_label(page, photo_file):
    """The download's error names the box as the page labels it ("Max size"), not the API
    field behind it."""
    upload(page, photo_file)
    page.locator("#max-size").fill("8")
    page.locator("#download").click()
    error = page.locator("#error")
    error.wait_for(state="visible")
    assert "Max size" in error.inner_text() and "max_size" not in error.inner_text()


@pytest.mark.slow
@pytest.mark.skipif(not default_model_path().is_file(), reason="no built-in model in this build")
def test_built_in_model_and_readme_screenshot(browser, tmp_path):
    """The page with the built-in model: a mixed blend, a painted region, all thumbnails."""
    with running_server(create_app(Stylizer())) as url:
        context = browser.new_context(viewport={"width": 1280, "height": 960})
        page = context.new_page()
        page.set_default_timeout(120_000)
        page.goto(url)
        page.wait_for_selector("#app[data-ready='true']")
        photo = tmp_path / "lake.jpg"
        Image.fromarray(sample_photo(576, 384)).save(photo, quality=92)
        upload(page, photo)
        card(page, 14).locator(".use").click()
        card(page, 4).locator(".add").click()
        page.locator("ul.weights[data-blend='outside'] li[data-index='4'] input").fill("40")
        page.locator("input[name='target'][value='inside']").check()
        card(page, 10).locator(".use").click()
        box = mask_box(page)
        page.mouse.move(box["x"] + box["width"] * 0.55, box["y"] + box["height"] * 0.2)
        page.mouse.down()
        for step in range(1, 11):
            page.mouse.move(box["x"] + box["width"] * (0.55 + 0.035 * step),
                            box["y"] + box["height"] * (0.2 + 0.01 * step))
        page.mouse.up()
        wait_for_preview(page)
        page.wait_for_function(
            "() => [...document.querySelectorAll('#gallery img')]"
            ".every((image) => image.complete && image.naturalWidth > 0)"
        )
        assert page.locator("#error").is_hidden()
        assert weights(page) == {"starry_night": "71%", "great_wave": "29%"}  # 100 : 40
        # every name in the mixes whole, not cut short with an ellipsis
        assert page.evaluate(
            "() => [...document.querySelectorAll('ul.weights .name')]"
            ".every((name) => name.scrollWidth <= name.clientWidth)")
        assert page.locator("ul.weights[data-blend='inside'] .name").inner_text() == "scream"
        shot = tmp_path / "serve.png"
        page.evaluate("window.scrollTo(0, 0)")
        page.screenshot(path=str(shot))
        context.close()
    with Image.open(shot) as image:
        assert image.size == (1280, 960)
    destination = os.environ.get("STYLECBN_SCREENSHOT")
    if destination:
        shutil.copyfile(shot, destination)


# --- the camera -----------------------------------------------------------------------------


def camera_frames(page):
    return int(page.evaluate("() => Number(document.getElementById('app').dataset.cameraFrames || 0)"))


def last_camera_pair(page):
    """(photo frame, stylized frame) last shown, both as the server and the page see them."""
    sent, shown = page.evaluate(
        """async () => {
            const read = async (blob) => Array.from(new Uint8Array(await blob.arrayBuffer()));
            const [sent, shown] = camera.lastPair;
            return [await read(sent), await read(shown)];
        }"""
    )
    return decode(bytes(sent)), decode(bytes(shown))


def wait_until_freed(app):
    deadline = time.monotonic() + 30
    while app.state.cameras and time.monotonic() < deadline:
        time.sleep(0.05)
    return not app.state.cameras


def test_the_camera_streams_stylized_frames(page, app, stylizer, tmp_path):
    page.uncheck("#steady")  # every frame painted on its own: comparable with the Stylizer
    card(page, 2).locator(".use").click()
    page.click("#camera")
    page.wait_for_function(
        "() => Number(document.getElementById('app').dataset.cameraFrames || 0) >= 4")
    assert page.locator("#error").is_hidden()
    assert float(page.get_attribute("#app", "data-camera-fps")) > 0
    assert page.locator("#camera-fps").inner_text().endswith("frames/s")
    assert len(app.state.cameras) == 1

    photo, shown = last_camera_pair(page)
    assert photo.shape == shown.shape and photo.shape[:2] == (480, 640)  # the fake camera's
    right = np.asarray(stylizer.stylize(photo, style=2, max_size=0), np.float32)
    wrong = np.asarray(stylizer.stylize(photo, style=0, max_size=0), np.float32)
    # The answer is a JPEG of `right`: its error is a few levels, while another style is
    # tens of levels away on average (the random styles differ in colour everywhere).
    error = np.abs(shown - right).mean()
    assert error < 0.25 * np.abs(shown - wrong).mean(), error

    with page.expect_download() as info:
        page.click("#snapshot")
    saved = tmp_path / "snapshot.jpg"
    info.value.save_as(saved)
    assert info.value.suggested_filename == "camera_stylized.jpg"
    assert decode(saved.read_bytes()).shape == (480, 640, 3)

    # A change of style reaches the next frames.
    card(page, 0).locator(".use").click()
    count = camera_frames(page)
    page.wait_for_function(
        f"() => Number(document.getElementById('app').dataset.cameraFrames) >= {count + 3}")
    photo, shown = last_camera_pair(page)
    right = np.asarray(stylizer.stylize(photo, style=0, max_size=0), np.float32)
    wrong = np.asarray(stylizer.stylize(photo, style=2, max_size=0), np.float32)
    assert np.abs(shown - right).mean() < 0.25 * np.abs(shown - wrong).mean()

    page.click("#camera")  # stop: the server lets the stream go
    assert page.get_attribute("#app", "data-camera") == "off"
    assert wait_until_freed(app)


def test_a_closed_tab_frees_the_camera_stream(browser, server, app):
    context = browser.new_context()
    page = context.new_page()
    page.goto(server)
    page.wait_for_selector("#app[data-ready='true']")
    page.click("#camera")
    page.wait_for_function(
        "() => Number(document.getElementById('app').dataset.cameraFrames || 0) >= 1")
    assert len(app.state.cameras) == 1
    context.close()
    assert wait_until_freed(app)


@pytest.mark.parametrize("failure, words", [
    ("NotAllowedError", "The camera was refused"),
    ("NotFoundError", "No camera was found"),
    (None, "browsers give the camera only to pages on https or on this computer"),
])
def test_a_refused_or_missing_camera_is_explained(browser, server, failure, words):
    context = browser.new_context()
    page = context.new_page()
    if failure is None:  # a page served over plain http from another address has none
        page.add_init_script("Object.defineProperty(navigator, 'mediaDevices', {value: undefined})")
    else:
        page.add_init_script(
            "navigator.mediaDevices.getUserMedia = () => Promise.reject("
            f"new DOMException('no', '{failure}'))")
    page.goto(server)
    page.wait_for_selector("#app[data-ready='true']")
    page.click("#camera")
    page.wait_for_selector("#error:not([hidden])")
    assert words in page.locator("#error").inner_text()
    assert page.get_attribute("#app", "data-camera") in (None, "off")
    context.close()
