// The stylecbn page: choose a photo, mix styles, paint a mask, download the result; or
// stylize the camera live. Everything goes through the server's API (GET /api/styles,
// POST /api/stylize, and the WebSocket /api/camera for the camera).
"use strict";

const app = {
  styles: [],
  previewSize: 384,
  // Two blends, style index -> slider weight (0..100): the whole picture, and the painted region.
  blends: { outside: new Map(), inside: new Map() },
  target: "outside",
  photoFile: null, // the photo as chosen, for the full-size download
  previewPhoto: null, // the photo at preview size as PNG, made once by the server
  maskPainted: false,
  painting: null, // the last brush position while the pointer is down
  requested: 0, // number of the newest preview asked for
  controller: null, // aborts the preview request in flight
  timer: null,
  previewUrl: null,
  photoSize: null, // [width, height] of the preview photo (the mask's size without the camera)
  maskVersion: 0, // counts the brush's changes, so the camera resends the mask only then
};

const $ = (id) => document.getElementById(id);
const main = $("app");
const mask = $("mask");
const maskContext = mask.getContext("2d");

// --- messages ---------------------------------------------------------------------------

function setStatus(text) {
  $("status").textContent = text;
}

function showError(text) {
  const box = $("error");
  box.textContent = text;
  box.hidden = false;
}

function hideError() {
  $("error").hidden = true;
}

// The API's field names in its messages, as the page labels those boxes.
const FIELD_LABELS = { max_size: "Max size" };

function forPeople(message) {
  return Object.entries(FIELD_LABELS).reduce(
    (text, [field, label]) => text.replaceAll(field, label), message);
}

async function errorOf(response) {
  try {
    const body = await response.json();
    if (body.error) return forPeople(body.error);
  } catch (ignored) {
    // not JSON: fall through to the status line
  }
  return `the server answered ${response.status} ${response.statusText}`;
}

// --- the API ----------------------------------------------------------------------------

function blendSpec(which) {
  // "3:40,12:60": the server normalizes the weights to sum 1, as `stylecbn apply --style` does.
  const parts = [...app.blends[which]].filter(([, w]) => w > 0).map(([i, w]) => `${i}:${w}`);
  if (!parts.length) {
    const where = which === "outside" ? "the whole picture" : "the painted region";
    throw new Error(`Give at least one style of ${where} a weight above 0.`);
  }
  return parts.join(",");
}

function maskBlob() {
  return new Promise((resolve) => mask.toBlob(resolve, "image/png"));
}

async function postStylize(fields, signal) {
  const form = new FormData();
  for (const [name, value] of Object.entries(fields)) {
    if (Array.isArray(value)) form.append(name, value[0], value[1]);
    else form.append(name, value);
  }
  let response;
  try {
    response = await fetch("/api/stylize", { method: "POST", body: form, signal });
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new Error("Cannot reach the stylecbn server: is `stylecbn serve` still running?");
  }
  if (!response.ok) throw new Error(await errorOf(response));
  return await response.blob();
}

async function styleFields(image, fileName, maxSize) {
  const fields = {
    image: [image, fileName],
    style: blendSpec("outside"),
    strength: String($("strength").value / 100),
    preserve_color: String($("preserve-color").checked),
    max_size: String(maxSize),
  };
  if (app.maskPainted) {
    fields.mask = [await maskBlob(), "mask.png"];
    fields.mask_style = blendSpec("inside");
  }
  return fields;
}

// --- the photo ----------------------------------------------------------------------------

async function loadPhoto(file) {
  if (!file) return;
  hideError();
  cancelPreview();
  main.dataset.pending = "true";
  setStatus(`Reading ${file.name}…`);
  let photo;
  try {
    // Strength 0 returns the photo itself: the server reads any format `stylecbn apply`
    // reads, turns it upright and shrinks it to the preview size, as a PNG the browser shows.
    photo = await postStylize({
      image: [file, file.name],
      strength: "0",
      max_size: String(app.previewSize),
    });
  } catch (error) {
    showError(error.message);
    setStatus(app.photoFile ? "Kept the previous photo." : "Choose a photo to start.");
    main.dataset.pending = "false";
    return;
  }
  const bitmap = await createImageBitmap(photo);
  if (camera.stream) stopCamera();
  app.photoFile = file;
  app.previewPhoto = photo;
  app.photoSize = [bitmap.width, bitmap.height];
  mask.width = bitmap.width;
  mask.height = bitmap.height;
  clearMask();
  await showPicture(photo);
  $("stage").hidden = false;
  fitStage();
  $("download").disabled = false;
  schedulePreview(0);
}

async function showPicture(blob) {
  const preview = $("preview");
  const url = URL.createObjectURL(blob);
  preview.src = url;
  await preview.decode();
  if (app.previewUrl) URL.revokeObjectURL(app.previewUrl);
  app.previewUrl = url;
}

function fitStage() {
  // The picture as large as its column and 80% of the window allow; the painting canvas
  // lies exactly over it. The stage is first let go, so the column's width is the one the
  // window gives it, not the one the picture held before a narrowing.
  if (!mask.width) return;
  const stage = $("stage");
  stage.style.width = "0px";
  const panel = $("picture");
  const room = panel.clientWidth - 2 * parseFloat(getComputedStyle(panel).paddingLeft);
  const scale = Math.min(room / mask.width, (0.8 * window.innerHeight) / mask.height);
  stage.style.width = `${Math.floor(mask.width * scale)}px`;
}

// --- the live preview -----------------------------------------------------------------------

function schedulePreview(delay = 150) {
  if (camera.stream) return; // the camera's next frame takes the new settings
  if (!app.previewPhoto) return;
  main.dataset.pending = "true"; // until the newest preview is answered
  clearTimeout(app.timer);
  app.timer = setTimeout(renderPreview, delay);
}

function cancelPreview() {
  clearTimeout(app.timer);
  app.requested += 1; // any answer still on its way is now outdated
  if (app.controller) app.controller.abort();
  app.controller = null;
}

async function renderPreview() {
  cancelPreview();
  const number = app.requested;
  main.dataset.requested = number;
  const controller = (app.controller = new AbortController());
  setStatus("Rendering the preview…");
  try {
    const fields = await styleFields(app.previewPhoto, "preview.png", app.previewSize);
    const blob = await postStylize(fields, controller.signal);
    if (number !== app.requested) return; // a newer preview was asked for meanwhile
    await showPicture(blob);
    if (number !== app.requested) return;
    hideError();
    setStatus("Preview ready.");
  } catch (error) {
    if (error.name === "AbortError" || number !== app.requested) return;
    showError(error.message);
    setStatus("The preview failed.");
  }
  // The newest request has been answered: tests wait for this.
  main.dataset.shown = number;
  main.dataset.pending = "false";
}

// --- blends -----------------------------------------------------------------------------

function setBlend(which, entries) {
  app.blends[which] = new Map(entries);
  renderWeights(which);
  markGallery();
  schedulePreview();
}

function renderWeights(which) {
  const list = document.querySelector(`ul.weights[data-blend="${which}"]`);
  list.replaceChildren();
  const blend = app.blends[which];
  for (const [index, weight] of blend) {
    const style = app.styles[index];
    const item = document.createElement("li");
    item.dataset.index = index;
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = style.name;
    const slider = document.createElement("input");
    slider.type = "range";
    slider.min = "0";
    slider.max = "100";
    slider.value = String(weight);
    slider.setAttribute("aria-label", `Weight of ${style.name}`);
    const percent = document.createElement("output");
    const remove = document.createElement("button");
    remove.type = "button";
    remove.textContent = "×";
    remove.title = `Remove ${style.name}`;
    remove.disabled = blend.size === 1;
    slider.addEventListener("input", () => {
      blend.set(index, Number(slider.value));
      updatePercents(which);
      schedulePreview();
    });
    remove.addEventListener("click", () => {
      blend.delete(index);
      setBlend(which, blend);
    });
    item.append(name, slider, percent, remove);
    list.append(item);
  }
  updatePercents(which);
}

function updatePercents(which) {
  // The weights as the shares they become once the server normalizes them to sum 1.
  const blend = app.blends[which];
  const total = [...blend.values()].reduce((a, b) => a + b, 0);
  for (const item of document.querySelectorAll(`ul.weights[data-blend="${which}"] li`)) {
    const weight = blend.get(Number(item.dataset.index));
    item.querySelector("output").textContent =
      total > 0 ? `${Math.round((100 * weight) / total)}%` : "–";
  }
}

function markGallery() {
  const blend = app.blends[app.target];
  for (const card of document.querySelectorAll("#gallery li")) {
    card.classList.toggle("selected", blend.has(Number(card.dataset.index)));
  }
}

// --- the gallery ----------------------------------------------------------------------------

async function loadStyles() {
  let body;
  try {
    const response = await fetch("/api/styles");
    if (!response.ok) throw new Error(await errorOf(response));
    body = await response.json();
  } catch (error) {
    showError(`Cannot load the styles: ${error.message}`);
    return;
  }
  app.styles = body.styles;
  app.previewSize = body.preview_size;
  $("max-size").value = body.default_max_size;
  const gallery = $("gallery");
  for (const style of app.styles) {
    const card = document.createElement("li");
    card.dataset.index = style.index;
    const use = document.createElement("button");
    use.type = "button";
    use.className = "use";
    use.title = style.credit ? `${style.name}: ${style.credit}` : style.name;
    const image = document.createElement("img");
    image.src = style.thumbnail;
    image.alt = "";
    image.loading = "lazy";
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = `${style.index} ${style.name}`;
    const credit = document.createElement("span");
    credit.className = "credit";
    credit.textContent = style.credit;
    use.append(image, name, credit);
    use.addEventListener("click", () => setBlend(app.target, [[style.index, 100]]));
    const add = document.createElement("button");
    add.type = "button";
    add.className = "add";
    add.textContent = "+";
    add.title = `Add ${style.name} to the mix`;
    add.addEventListener("click", () => {
      const blend = app.blends[app.target];
      if (!blend.has(style.index)) blend.set(style.index, 100);
      setBlend(app.target, blend);
    });
    card.append(use, add);
    gallery.append(card);
  }
  app.blends.outside = new Map([[0, 100]]);
  app.blends.inside = new Map([[Math.min(1, app.styles.length - 1), 100]]);
  renderWeights("outside");
  renderWeights("inside");
  markGallery();
  main.dataset.ready = "true";
}

// --- the brush ------------------------------------------------------------------------------

function clearMask() {
  app.maskVersion += 1;
  maskContext.fillStyle = "#000";
  maskContext.fillRect(0, 0, mask.width, mask.height);
  app.maskPainted = false;
}

function canvasPoint(event) {
  const box = mask.getBoundingClientRect();
  return [
    ((event.clientX - box.left) * mask.width) / box.width,
    ((event.clientY - box.top) * mask.height) / box.height,
  ];
}

function dab([x, y]) {
  app.maskVersion += 1;
  // A soft round dab: full strength inside half the radius, fading to nothing at the edge.
  // The mask is gray levels, white = the painted region's mix (what `--mask` reads).
  const radius = Number($("brush-size").value) / 2;
  const color = document.querySelector('input[name="tool"]:checked').value === "eraser"
    ? "0, 0, 0" : "255, 255, 255";
  const gradient = maskContext.createRadialGradient(x, y, radius / 2, x, y, radius);
  gradient.addColorStop(0, `rgba(${color}, 1)`);
  gradient.addColorStop(1, `rgba(${color}, 0)`);
  maskContext.fillStyle = gradient;
  maskContext.beginPath();
  maskContext.arc(x, y, radius, 0, 2 * Math.PI);
  maskContext.fill();
}

function strokeTo(point) {
  const [x0, y0] = app.painting;
  const [x1, y1] = point;
  const spacing = Math.max(1, Number($("brush-size").value) / 8);
  const steps = Math.max(1, Math.ceil(Math.hypot(x1 - x0, y1 - y0) / spacing));
  for (let step = 1; step <= steps; step += 1) {
    dab([x0 + ((x1 - x0) * step) / steps, y0 + ((y1 - y0) * step) / steps]);
  }
  app.painting = point;
}

mask.addEventListener("pointerdown", (event) => {
  if (!app.previewPhoto || event.button !== 0) return;
  mask.setPointerCapture(event.pointerId);
  app.painting = canvasPoint(event);
  dab(app.painting);
  app.maskPainted = true;
  schedulePreview(250);
});
mask.addEventListener("pointermove", (event) => {
  if (!app.painting) return;
  strokeTo(canvasPoint(event));
  schedulePreview(250);
});
for (const type of ["pointerup", "pointercancel"]) {
  mask.addEventListener(type, () => {
    if (!app.painting) return;
    app.painting = null;
    schedulePreview(0);
  });
}

// --- download ---------------------------------------------------------------------------

async function download() {
  const button = $("download");
  const format = $("format").value;
  button.disabled = true;
  hideError();
  setStatus("Rendering the full-size picture…");
  try {
    const fields = await styleFields(app.photoFile, app.photoFile.name, $("max-size").value.trim());
    fields.format = format;
    const blob = await postStylize(fields);
    const link = document.createElement("a");
    const stem = app.photoFile.name.replace(/\.[^.]*$/, "") || "photo";
    link.href = URL.createObjectURL(blob);
    link.download = `${stem}_stylized.${format === "jpeg" ? "jpg" : "png"}`;
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 60000);
    setStatus(`Saved ${link.download}.`);
  } catch (error) {
    showError(error.message);
    setStatus("The download failed.");
  } finally {
    button.disabled = false;
  }
}

// --- the camera -------------------------------------------------------------------------------
// Frames go to the server over a WebSocket, one at a time: the next is sent when the previous
// one comes back stylized, so frames are dropped at the camera rather than queued, and what
// is shown is never more than one frame behind.

const camera = {
  stream: null,
  socket: null,
  canvas: document.createElement("canvas"),
  busy: false, // a frame is on its way to the server or back
  settings: "", // the settings last sent, as JSON
  maskVersion: -1, // the brush's version last sent
  received: [], // arrival times of the last frames (for frames per second)
  shown: 0,
  lastFrame: null, // the newest stylized frame (the snapshot)
  sent: null, // the frame on its way
  lastPair: null, // [the photo frame, its stylized frame] last shown (the tests compare them)
  retry: null,
};

const CAMERA_ERRORS = {
  NotAllowedError: "The camera was refused: allow it for this page in the browser's site " +
    "settings, then press Camera again.",
  SecurityError: "The browser refused the camera to this page.",
  NotFoundError: "No camera was found: connect one, then press Camera again.",
  OverconstrainedError: "No camera was found: connect one, then press Camera again.",
  NotReadableError: "The camera is busy in another program (or was unplugged).",
};

async function startCamera() {
  hideError();
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    showError("This browser offers no camera to this page: browsers give the camera only to " +
      "pages on https or on this computer (open http://localhost:PORT or 127.0.0.1).");
    return;
  }
  const button = $("camera");
  button.disabled = true;
  setStatus("Asking for the camera…");
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({
      video: { width: { ideal: 640 }, height: { ideal: 480 } },
      audio: false,
    });
  } catch (error) {
    button.disabled = false;
    showError(CAMERA_ERRORS[error.name] || `The camera could not start (${error.name}: ${error.message}).`);
    setStatus("No camera.");
    return;
  }
  cancelPreview();
  camera.stream = stream;
  const video = $("camera-video");
  video.srcObject = stream;
  await video.play();
  if (!video.videoWidth) {
    await new Promise((resolve) => video.addEventListener("resize", resolve, { once: true }));
  }
  camera.canvas.width = video.videoWidth;
  camera.canvas.height = video.videoHeight;
  mask.width = video.videoWidth;
  mask.height = video.videoHeight;
  clearMask();
  $("stage").hidden = false;
  fitStage();
  camera.settings = "";
  camera.maskVersion = -1;
  camera.received = [];
  camera.busy = false;
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const socket = (camera.socket = new WebSocket(`${scheme}://${location.host}/api/camera`));
  socket.binaryType = "blob";
  socket.addEventListener("open", sendFrame);
  socket.addEventListener("message", (event) => cameraMessage(socket, event));
  socket.addEventListener("close", (event) => {
    if (camera.socket !== socket) return; // stopped by the page
    stopCamera();
    showError(event.reason || "The server closed the camera stream: is `stylecbn serve` still running?");
  });
  button.disabled = false;
  button.textContent = "Stop camera";
  button.setAttribute("aria-pressed", "true");
  $("snapshot").disabled = false;
  main.dataset.camera = "on";
  setStatus("Camera on.");
}

function stopCamera() {
  const socket = camera.socket;
  camera.socket = null;
  if (socket) socket.close();
  if (camera.stream) for (const track of camera.stream.getTracks()) track.stop();
  camera.stream = null;
  clearTimeout(camera.retry);
  $("camera-video").srcObject = null;
  $("camera").textContent = "Camera";
  $("camera").setAttribute("aria-pressed", "false");
  $("snapshot").disabled = true;
  $("camera-fps").textContent = "";
  main.dataset.camera = "off";
  if (app.previewPhoto) {
    [mask.width, mask.height] = app.photoSize;
    clearMask();
    fitStage();
    showPicture(app.previewPhoto);
    schedulePreview(0);
  } else {
    $("stage").hidden = true;
  }
  setStatus("Camera off.");
}

function cameraSettings() {
  // Everything the server paints a frame with; the mask only when the brush changed it.
  const settings = {
    style: blendSpec("outside"),
    strength: Number($("strength").value) / 100,
    preserve_color: $("preserve-color").checked,
    steady: $("steady").checked,
    mask_style: app.maskPainted ? blendSpec("inside") : null,
  };
  const text = JSON.stringify(settings);
  const changes = text === camera.settings ? {} : settings;
  camera.settings = text;
  if (camera.maskVersion !== app.maskVersion) {
    camera.maskVersion = app.maskVersion;
    Object.assign(changes, settings, { mask: app.maskPainted ? mask.toDataURL("image/png") : null });
  }
  return changes;
}

function sendFrame() {
  const socket = camera.socket;
  if (!socket || socket.readyState !== WebSocket.OPEN || camera.busy) return;
  let changes;
  try {
    changes = cameraSettings();
  } catch (error) {
    showError(error.message); // no style with a weight: wait for one
    camera.retry = setTimeout(sendFrame, 500);
    return;
  }
  if (Object.keys(changes).length) socket.send(JSON.stringify(changes));
  camera.busy = true;
  const video = $("camera-video");
  camera.canvas.getContext("2d").drawImage(video, 0, 0, camera.canvas.width, camera.canvas.height);
  camera.canvas.toBlob((blob) => {
    if (camera.socket !== socket || socket.readyState !== WebSocket.OPEN) return;
    camera.sent = blob;
    socket.send(blob);
  }, "image/jpeg", 0.9);
}

async function cameraMessage(socket, event) {
  if (camera.socket !== socket) return;
  if (typeof event.data === "string") {
    const message = JSON.parse(event.data);
    if (message.error) {
      showError(message.error);
      camera.busy = false; // this frame will not come back: try the next one shortly
      clearTimeout(camera.retry);
      camera.retry = setTimeout(sendFrame, 500);
    }
    return;
  }
  camera.lastFrame = event.data;
  camera.lastPair = [camera.sent, event.data];
  await showPicture(event.data);
  if (camera.socket !== socket) return;
  const now = performance.now();
  camera.received.push(now);
  while (camera.received.length > 2 && now - camera.received[0] > 2000) camera.received.shift();
  const span = (now - camera.received[0]) / 1000;
  if (camera.received.length > 1 && span > 0) {
    const rate = (camera.received.length - 1) / span;
    $("camera-fps").textContent = `${rate.toFixed(1)} frames/s`;
    main.dataset.cameraFps = rate.toFixed(2);
  }
  camera.shown += 1;
  main.dataset.cameraFrames = String(camera.shown);
  camera.busy = false;
  sendFrame();
}

function snapshot() {
  if (!camera.lastFrame) return;
  const link = document.createElement("a");
  link.href = URL.createObjectURL(camera.lastFrame);
  link.download = "camera_stylized.jpg";
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 60000);
  setStatus(`Saved ${link.download}.`);
}

// --- wiring -----------------------------------------------------------------------------------

$("camera").addEventListener("click", () => (camera.stream ? stopCamera() : startCamera()));
$("snapshot").addEventListener("click", snapshot);

$("file").addEventListener("change", (event) => loadPhoto(event.target.files[0]));
const drop = $("drop");
drop.addEventListener("dragover", (event) => {
  event.preventDefault();
  drop.classList.add("over");
});
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (event) => {
  event.preventDefault();
  drop.classList.remove("over");
  loadPhoto(event.dataTransfer.files[0]);
});
for (const radio of document.querySelectorAll('input[name="target"]')) {
  radio.addEventListener("change", () => {
    app.target = radio.value;
    markGallery();
  });
}
$("strength").addEventListener("input", (event) => {
  $("strength-value").textContent = `${event.target.value}%`;
  schedulePreview();
});
$("preserve-color").addEventListener("change", () => schedulePreview(0));
$("brush-size").addEventListener("input", (event) => {
  $("brush-size-value").textContent = `${event.target.value} px`;
});
$("show-mask").addEventListener("change", (event) => {
  mask.classList.toggle("hidden-mask", !event.target.checked);
});
$("clear-mask").addEventListener("click", () => {
  clearMask();
  schedulePreview(0);
});
$("download").addEventListener("click", download);
window.addEventListener("resize", fitStage);

loadStyles();
