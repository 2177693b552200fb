/* sketch2image web page: plain JavaScript, no build step, no request leaves this service.
 *
 * Sections: helpers · API client · errors in plain words · models and the controls they
 * need · drawing board · face guide · input sources (upload, drop, paste, camera) · jobs
 * (submit, poll, cancel) · result, download, history · live mode · keyboard · start-up.
 */
"use strict";

/* ---------- helpers ---------- */

const $ = (id) => document.getElementById(id);

const TASK_LABELS = {
  sketch2photo: "Drawing → photo",
  photo2sketch: "Photo → drawing",
  generate: "Generate from noise",
};
const TASK_ORDER = ["sketch2photo", "photo2sketch", "generate"];
const FINAL_STATES = new Set(["succeeded", "failed", "canceled", "expired"]);
const HISTORY_LIMIT = 12;
const LIVE_DELAY_MS = 450;

const state = {
  models: [], // GET /v1/models
  modelsLoaded: false,
  modelsTimer: 0,
  defaults: {}, // what model=auto routes to, per task
  translateTakesN: false, // the API's translate accepts `n` (variations)
  source: "draw", // draw | upload | camera
  input: null, // {blob, name, from, url}: the uploaded or photographed image
  result: null, // the history entry on show
  running: null, // the request in flight: {controller, jobId}
  ticket: 0, // increases with each request: answers to older tickets are dropped
  history: [],
  nextHistoryId: 1,
  stream: null, // the camera's MediaStream
  liveTimer: 0,
  apiKey: sessionStorage.getItem("s2i-api-key") || "",
};

function sleep(ms, signal) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => {
      clearTimeout(timer);
      reject(new DOMException("Aborted", "AbortError"));
    }, { once: true });
  });
}

function seconds(ms) {
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(1)} s`;
}

function canvasToBlob(canvas, type = "image/png", quality) {
  return new Promise((resolve, reject) => {
    canvas.toBlob((b) => (b ? resolve(b) : reject(new Error("could not encode"))), type, quality);
  });
}

/* ---------- API client ---------- */

class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }
}

async function problemOf(res) {
  try {
    const body = await res.json();
    if (body && typeof body === "object") return body;
  } catch { /* not JSON: fall through */ }
  return { title: res.statusText || `HTTP ${res.status}`, detail: "" };
}

/** fetch() with the API key, JSON bodies and problem+json errors thrown as ApiError. */
async function api(path, { method = "GET", body, json, signal } = {}) {
  const headers = {};
  if (state.apiKey) headers["X-API-Key"] = state.apiKey;
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  }
  let res;
  try {
    res = await fetch(path, { method, body, headers, signal });
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new ApiError(0, { type: "network", title: "No connection", detail: err.message });
  }
  if (!res.ok) throw new ApiError(res.status, await problemOf(res));
  return res;
}

/* ---------- errors in plain words ---------- */

const PLAIN_WORDS = {
  "unreadable-image":
    "That file could not be read as an image: it may be damaged, or not an image at all.",
  "unsupported-format": "That file is not an image the service can read.",
  "unsupported-media-type": "That file is not an image the service can read.",
  "image-too-large": "That image is too large. Try a smaller one.",
  "unknown-model": "That model is not available right now. Pick another one from the list.",
  "queue-full": "The service is busy right now. Wait a few seconds and try again.",
  "service-unavailable":
    "The service is not ready: no model is running yet. Try again in a moment.",
  "storage-full": "The service has no room for new requests right now. Try again later.",
  "deadline-exceeded": "The service took too long to answer. Try again.",
  "job-canceled": "The request was canceled.",
  "input-expired": "The service lost this request before running it. Try again.",
  "result-expired": "The result is no longer kept by the service. Run it again.",
  "invalid-request": "Some settings are not valid.",
  "wrong-task": "This model cannot do that.",
  "unauthorized": "This service needs a valid API key: enter it above.",
  "invalid-model-output":
    "The model could not make an image from this input. Try another input or model.",
  "internal-error": "Something went wrong inside the service. Try again; if it keeps " +
    "happening, tell whoever runs it.",
  network: "The service could not be reached. Check the connection and try again.",
};

/** {headline, detail, fields} for an ApiError (problem+json) or any other error. */
function describe(err) {
  const problem = err.problem || { title: "Something went wrong", detail: err.message };
  const slug = String(problem.type || "").split(":").pop();
  const headline = PLAIN_WORDS[slug] || problem.title || "Something went wrong.";
  const detail = problem.detail && problem.detail !== headline ? problem.detail : "";
  return { slug, headline, detail, fields: problem.errors || [] };
}

function showError(err) {
  const { headline, detail, fields } = describe(err);
  const box = $("error");
  box.replaceChildren();
  const head = document.createElement("p");
  head.className = "error-headline";
  head.textContent = headline;
  box.append(head);
  if (detail) {
    const more = document.createElement("p");
    more.className = "error-detail";
    more.textContent = `Details: ${detail}`;
    box.append(more);
  }
  if (fields.length) {
    const list = document.createElement("ul");
    for (const f of fields) {
      const item = document.createElement("li");
      item.textContent = f.field ? `${f.field}: ${f.message}` : f.message;
      list.append(item);
    }
    box.append(list);
  }
  box.hidden = false;
  setStatus("");
  if (err.status === 401) $("key-row").hidden = false;
}

function clearError() {
  $("error").hidden = true;
  $("error").replaceChildren();
}

function setStatus(text, ok = false) {
  $("status").textContent = text;
  $("status").className = ok ? "ok" : "";
}

/* ---------- models and the controls they need ---------- */

function currentModel() {
  const name = $("model").value;
  return name === "auto" ? null : state.models.find((m) => m.name === name) || null;
}

function currentTask() {
  return currentModel()?.task || "auto";
}

/** The model whose style options apply: the chosen one, or auto's photo → drawing model. */
function styleModel() {
  const m = currentModel() || state.models.find((x) => x.name === state.defaults.photo2sketch);
  return m?.input?.condition === "style" && m.task !== "generate" ? m : null;
}

/** Translators with noise (input.noise_dim > 0, as the API decides) give several variations. */
function takesVariations(model) {
  const noisy = model?.input?.noise_dim > 0;
  return Boolean(state.translateTakesN && model && model.task !== "generate" && noisy);
}

/** GET /v1/models into the picker; again every few seconds while the service has none. */
async function loadModels() {
  clearTimeout(state.modelsTimer);
  try {
    const data = await (await api("/v1/models")).json();
    state.models = data.models || [];
    state.defaults = data.defaults || {};
    state.modelsLoaded = true;
    fillModelPicker();
    $("key-row").hidden = true;
    if (!state.models.length) state.modelsTimer = setTimeout(loadModels, 5000);
  } catch (err) {
    const why = describe(err).headline;
    $("model-info").textContent = `Could not load the models: ${why} Retrying…`;
    if (err.status === 401) $("key-row").hidden = false;
    state.modelsTimer = setTimeout(loadModels, 5000);
  }
}

async function loadApiFeatures() {
  try {
    const spec = await (await fetch("/openapi.json")).json();
    const props = spec.components?.schemas?.TranslateJSON?.properties || {};
    state.translateTakesN = "n" in props;
  } catch { /* without the schema, no variations control */ }
  adaptControls();
}

/** The picker: Auto, then one group per task; each option names its version. */
function fillModelPicker() {
  const select = $("model");
  const chosen = select.value;
  select.replaceChildren(new Option("Auto: detect drawing or photo", "auto"));
  const tasks = [...new Set(state.models.map((m) => m.task))]
    .sort((a, b) => TASK_ORDER.indexOf(a) - TASK_ORDER.indexOf(b));
  for (const task of tasks) {
    const group = document.createElement("optgroup");
    group.label = TASK_LABELS[task] || task;
    for (const m of state.models.filter((x) => x.task === task)) {
      group.append(new Option(`${m.name} · v${m.version}`, m.name));
    }
    select.append(group);
  }
  select.value = [...select.options].some((o) => o.value === chosen) ? chosen : "auto";
  adaptControls();
}

function modelSummary(m) {
  const out = m.output || {};
  const size = out.width && out.height ? ` · ${out.width}×${out.height} px` : "";
  const what = m.description || TASK_LABELS[m.task] || m.task;
  return `${TASK_LABELS[m.task] || m.task}, version ${m.version}${size}: ${what}`;
}

function describeAuto() {
  if (!state.modelsLoaded) return "Loading the models the service runs…";
  if (!state.models.length) return "The service runs no models yet: waiting for a worker…";
  const name = (task) => {
    const m = state.models.find((x) => x.name === state.defaults[task]);
    return m ? `${m.name} v${m.version}` : "none";
  };
  return `Looks at the input: drawings go to ${name("sketch2photo")}, ` +
    `photos to ${name("photo2sketch")}.`;
}

/** Show the controls the chosen model takes; hide the rest. */
function adaptControls() {
  const model = currentModel();
  const generating = currentTask() === "generate";
  $("model-info").textContent = model ? modelSummary(model) : describeAuto();
  $("input-title").textContent = generating ? "Settings" : "Input";
  $("sources").hidden = generating;
  $("stage").hidden = generating;
  $("generate-tools").hidden = !generating;
  $("translate-options").hidden = generating;
  $("go").textContent = generating ? "Generate" : "Translate";
  showSourceTools();
  if (generating) fillClasses(model);

  const sm = styleModel();
  $("style-label").hidden = !sm;
  if (sm) fillStyles(sm, !model);
  const variations = takesVariations(model);
  $("variations-label").hidden = !variations;
  $("variation-seed-label").hidden = !variations;
}

function fillStyles(model, forAuto) {
  const select = $("style");
  const chosen = select.value;
  const values = model.input.condition_values || [];
  const fallback = model.input.condition_default || values[0];
  select.replaceChildren(new Option(`Default (${fallback})`, ""));
  for (const v of values) select.append(new Option(`Style ${v}`, v));
  select.value = values.includes(chosen) ? chosen : "";
  $("style-label").firstChild.textContent = forAuto ? "Sketch style (photos) " : "Sketch style ";
}

function fillClasses(model) {
  const names = model?.input?.class_names || [];
  $("class-label").hidden = names.length === 0;
  const select = $("class-name");
  const chosen = select.value;
  select.replaceChildren(new Option("Any (mixed)", ""));
  for (const n of names) select.append(new Option(n[0].toUpperCase() + n.slice(1), n));
  select.value = names.includes(chosen) ? chosen : "";
}

/* ---------- drawing board ---------- */
// The drawing is a list of actions (strokes, clears, loads) replayed onto a transparent
// canvas: undo/redo move actions between two stacks. The face guide is a separate canvas
// underneath and never part of the image sent to the model.

const board = {
  canvas: null,
  ctx: null,
  actions: [],
  undone: [],
  stroke: null, // the stroke being drawn
  drawingId: 1, // a new drawing starts after a clear or load (live history groups by it)
};

function toolNow() {
  return document.querySelector("input[name=tool]:checked").value;
}

function pointOf(event) {
  const r = board.canvas.getBoundingClientRect();
  const pressure = event.pointerType === "pen" ? event.pressure || 0.5 : 0.5;
  return {
    x: ((event.clientX - r.left) * board.canvas.width) / r.width,
    y: ((event.clientY - r.top) * board.canvas.height) / r.height,
    w: 0.3 + pressure * 1.4, // pen pressure scales the width; mouse and touch: 1
  };
}

/** Draw segment i of a stroke (quadratic through midpoints: smooth, and incremental). */
function drawSegment(ctx, stroke, i) {
  const p = stroke.points;
  ctx.globalCompositeOperation = stroke.tool === "eraser" ? "destination-out" : "source-over";
  ctx.strokeStyle = "#111";
  ctx.fillStyle = "#111";
  ctx.lineCap = "round";
  ctx.lineJoin = "round";
  const width = stroke.width * (stroke.tool === "eraser" ? 2.5 : 1);
  if (i === 0) {
    ctx.beginPath();
    ctx.arc(p[0].x, p[0].y, (width * p[0].w) / 2, 0, Math.PI * 2);
    ctx.fill();
    return;
  }
  const mid = (a, b) => ({ x: (a.x + b.x) / 2, y: (a.y + b.y) / 2 });
  const start = i === 1 ? p[0] : mid(p[i - 2], p[i - 1]);
  const end = mid(p[i - 1], p[i]);
  ctx.lineWidth = width * p[i].w;
  ctx.beginPath();
  ctx.moveTo(start.x, start.y);
  ctx.quadraticCurveTo(p[i - 1].x, p[i - 1].y, end.x, end.y);
  ctx.stroke();
}

function drawStroke(ctx, stroke) {
  for (let i = 0; i < stroke.points.length; i++) drawSegment(ctx, stroke, i);
  const last = stroke.points.length - 1;
  if (last > 0) { // the tail from the last midpoint to the last point
    const p = stroke.points;
    ctx.beginPath();
    ctx.moveTo((p[last - 1].x + p[last].x) / 2, (p[last - 1].y + p[last].y) / 2);
    ctx.lineTo(p[last].x, p[last].y);
    ctx.stroke();
  }
}

function replay() {
  const { ctx, canvas } = board;
  ctx.globalCompositeOperation = "source-over";
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  for (const a of board.actions) {
    if (a.type === "clear" || a.type === "load") ctx.clearRect(0, 0, canvas.width, canvas.height);
    if (a.type === "stroke") drawStroke(ctx, a);
    if (a.type === "load") a.strokes.forEach((s) => drawStroke(ctx, s));
  }
  ctx.globalCompositeOperation = "source-over";
}

function pushAction(action) {
  board.actions.push(action);
  board.undone = [];
  afterEdit();
}

function afterEdit() {
  $("undo").disabled = board.actions.length === 0;
  $("redo").disabled = board.undone.length === 0;
  onDrawingChanged();
}

function undo() {
  if (!board.actions.length) return;
  board.undone.push(board.actions.pop());
  replay();
  afterEdit();
}

function redo() {
  if (!board.undone.length) return;
  board.actions.push(board.undone.pop());
  replay();
  afterEdit();
}

function clearDrawing() {
  if (isBlank()) return;
  board.drawingId++;
  pushAction({ type: "clear" });
  replay();
}

/** The strokes on show now (after the last clear or load): what history keeps. */
function visibleStrokes() {
  let strokes = [];
  for (const a of board.actions) {
    if (a.type === "clear") strokes = [];
    if (a.type === "load") strokes = [...a.strokes];
    if (a.type === "stroke") strokes.push(a);
  }
  return strokes;
}

function loadStrokes(strokes) {
  board.drawingId++;
  pushAction({ type: "load", strokes });
  replay();
}

function isBlank() {
  const { data } = board.ctx.getImageData(0, 0, board.canvas.width, board.canvas.height);
  for (let i = 3; i < data.length; i += 4) if (data[i] > 8) return false;
  return true;
}

/** The drawing as a PNG: black strokes on white paper (the guide is not included). */
async function drawingBlob() {
  const out = document.createElement("canvas");
  out.width = board.canvas.width;
  out.height = board.canvas.height;
  const ctx = out.getContext("2d");
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, out.width, out.height);
  ctx.drawImage(board.canvas, 0, 0);
  return canvasToBlob(out);
}

function onPointerDown(event) {
  if (event.pointerType === "mouse" && event.button !== 0) return;
  event.preventDefault();
  try {
    board.canvas.setPointerCapture(event.pointerId); // keep the stroke when it leaves the canvas
  } catch { /* a synthetic pointer: no capture needed */ }
  clearTimeout(state.liveTimer);
  board.stroke = {
    type: "stroke",
    tool: toolNow(),
    width: Number($("width").value),
    points: [pointOf(event)],
    pointerId: event.pointerId,
  };
  drawSegment(board.ctx, board.stroke, 0);
  board.ctx.globalCompositeOperation = "source-over";
}

function onPointerMove(event) {
  const stroke = board.stroke;
  if (!stroke || event.pointerId !== stroke.pointerId) return;
  const events = event.getCoalescedEvents?.() || [event];
  for (const e of events.length ? events : [event]) {
    stroke.points.push(pointOf(e));
    drawSegment(board.ctx, stroke, stroke.points.length - 1);
  }
  board.ctx.globalCompositeOperation = "source-over";
}

function onPointerUp(event) {
  const stroke = board.stroke;
  if (!stroke || event.pointerId !== stroke.pointerId) return;
  board.stroke = null;
  delete stroke.pointerId;
  pushAction(stroke);
  replay(); // the exact, final rendering (with the stroke's tail)
}

function setupBoard() {
  board.canvas = $("sketch");
  board.ctx = board.canvas.getContext("2d", { willReadFrequently: true });
  board.canvas.addEventListener("pointerdown", onPointerDown);
  board.canvas.addEventListener("pointermove", onPointerMove);
  board.canvas.addEventListener("pointerup", onPointerUp);
  board.canvas.addEventListener("pointercancel", onPointerUp);
  $("undo").addEventListener("click", undo);
  $("redo").addEventListener("click", redo);
  $("clear").addEventListener("click", clearDrawing);
  $("width").addEventListener("input", () => { $("width-value").value = $("width").value; });
  for (const radio of document.querySelectorAll("input[name=tool]")) {
    radio.addEventListener("change", () => {
      board.canvas.classList.toggle("erasing", toolNow() === "eraser");
    });
  }
  $("show-guide").addEventListener("change", () => {
    $("guide").hidden = !$("show-guide").checked;
  });
  drawGuide($("guide"));
}

/* ---------- face guide ---------- */

/** A faint face outline with eye, nose and mouth lines, to draw over (never sent). */
function drawGuide(canvas) {
  const ctx = canvas.getContext("2d");
  const w = canvas.width;
  const h = canvas.height;
  ctx.strokeStyle = "rgba(42, 79, 208, 0.22)";
  ctx.lineWidth = 2;
  ctx.setLineDash([8, 8]);
  ctx.beginPath();
  ctx.ellipse(w / 2, h * 0.5, w * 0.27, h * 0.35, 0, 0, Math.PI * 2); // the head
  ctx.stroke();
  ctx.beginPath();
  ctx.moveTo(w / 2, h * 0.17); // the middle line
  ctx.lineTo(w / 2, h * 0.83);
  ctx.moveTo(w * 0.26, h * 0.45); // eyes
  ctx.lineTo(w * 0.74, h * 0.45);
  ctx.moveTo(w * 0.42, h * 0.6); // nose
  ctx.lineTo(w * 0.58, h * 0.6);
  ctx.moveTo(w * 0.38, h * 0.7); // mouth
  ctx.lineTo(w * 0.62, h * 0.7);
  ctx.stroke();
  ctx.setLineDash([]);
  ctx.beginPath(); // the eyes themselves
  ctx.ellipse(w * 0.39, h * 0.45, w * 0.055, h * 0.025, 0, 0, Math.PI * 2);
  ctx.ellipse(w * 0.61, h * 0.45, w * 0.055, h * 0.025, 0, 0, Math.PI * 2);
  ctx.stroke();
}

/* ---------- input sources: upload, drop, paste, camera ---------- */

function setSource(source) {
  if (state.source === "camera" && source !== "camera") stopCamera();
  state.source = source;
  $(`src-${source}`).checked = true;
  showSourceTools();
}

/** What the input pane shows for the current source. */
function showSourceTools() {
  const generating = currentTask() === "generate";
  const s = state.source;
  $("draw-tools").hidden = generating || s !== "draw";
  $("upload-tools").hidden = generating || s !== "upload";
  $("camera-tools").hidden = generating || s !== "camera";
  $("sketch").hidden = s !== "draw";
  $("guide").hidden = s !== "draw" || !$("show-guide").checked;
  const camera = s === "camera" && Boolean(state.stream);
  $("video").hidden = !camera;
  const image = s !== "draw" && !camera && state.input && state.input.from === s;
  $("input").hidden = !(image && state.input.previewable);
  const placeholder = s !== "draw" && !camera && !(image && state.input.previewable);
  $("input-placeholder").hidden = !placeholder;
  if (placeholder) setPlaceholder(image ? state.input : null);
}

function setPlaceholder(input) {
  if (input) {
    $("ph-title").textContent = `No preview for ${input.name}`;
    $("ph-text").textContent = "The browser cannot show this file.";
  } else if (state.source === "camera") {
    $("ph-title").textContent = "Camera is off";
    $("ph-text").textContent = "Press Start camera, then Take picture.";
  } else {
    $("ph-title").textContent = "Drop an image here";
    $("ph-text").textContent = "or paste one (Ctrl+V), or use Choose image…";
  }
}

/** A new uploaded / pasted / dropped / photographed image: show it and translate it. */
async function useImage(blob, name, from) {
  if (currentTask() === "generate") $("model").value = "auto";
  forgetInput();
  clearResult();
  clearError();
  const url = URL.createObjectURL(blob);
  state.input = { blob, name, from, url, previewable: false };
  const img = $("input");
  img.src = url;
  img.alt = `The input image: ${name}`;
  try {
    await img.decode();
    state.input.previewable = true;
  } catch { /* the API says what is wrong with it */ }
  if (state.input?.url !== url) return; // another image came in meanwhile
  setSource(from);
  adaptControls();
  run();
}

function forgetInput() {
  if (state.input && !state.history.some((h) => h.input.url === state.input.url)) {
    URL.revokeObjectURL(state.input.url);
  }
  state.input = null;
  $("input").removeAttribute("src");
}

function imageFiles(list) {
  return [...(list || [])].filter((f) => f.type.startsWith("image/") || f.type === "");
}

function setupUploads() {
  $("file").addEventListener("change", (e) => {
    const file = e.target.files[0];
    if (file) useImage(file, file.name, "upload");
    e.target.value = ""; // choosing the same file again still counts
  });
  const stage = $("stage");
  document.addEventListener("dragover", (e) => {
    if (![...(e.dataTransfer?.types || [])].includes("Files")) return;
    e.preventDefault();
    stage.classList.add("dropping");
  });
  document.addEventListener("dragleave", (e) => {
    if (e.relatedTarget === null) stage.classList.remove("dropping");
  });
  document.addEventListener("drop", (e) => {
    stage.classList.remove("dropping");
    const file = e.dataTransfer?.files?.[0];
    if (!file) return;
    e.preventDefault();
    useImage(file, file.name, "upload");
  });
  document.addEventListener("paste", (e) => {
    const file = imageFiles(e.clipboardData?.files)[0];
    if (!file) return; // plain text pastes into fields as usual
    e.preventDefault();
    useImage(file, file.name || "pasted image", "upload");
  });
}

const CAMERA_ERRORS = {
  NotAllowedError: "Camera access was denied. Allow the camera for this site in the browser's " +
    "settings and press Start camera again, or upload a photo instead.",
  SecurityError: "Camera access was denied. Allow the camera for this site in the browser's " +
    "settings and press Start camera again, or upload a photo instead.",
  NotFoundError: "No camera was found on this device. Upload a photo instead.",
  OverconstrainedError: "No camera was found on this device. Upload a photo instead.",
  NotReadableError: "The camera is in use by another application. Close it and try again.",
};

function cameraMessage(text, isError = false) {
  $("camera-message").textContent = text;
  $("camera-message").classList.toggle("error", isError);
}

async function startCamera() {
  if (!navigator.mediaDevices?.getUserMedia) {
    cameraMessage("The camera needs a secure page: open this service over https or on " +
      "localhost. You can upload a photo instead.", true);
    return;
  }
  stopCamera();
  cameraMessage("Waiting for the camera…");
  try {
    const stream = await navigator.mediaDevices.getUserMedia({
      video: { facingMode: "user", width: { ideal: 1280 }, height: { ideal: 720 } },
      audio: false,
    });
    state.stream = stream;
    const video = $("video");
    video.srcObject = stream;
    await video.play().catch(() => {});
    if (!video.videoWidth) {
      await new Promise((resolve) => {
        video.addEventListener("loadedmetadata", resolve, { once: true });
      });
    }
    setSource("camera");
    $("snap").disabled = false;
    $("camera-start").textContent = "Stop camera";
    cameraMessage("Centre your face, then press Take picture.");
    $("snap").focus();
  } catch (err) {
    stopCamera();
    cameraMessage(CAMERA_ERRORS[err.name] || `The camera could not start: ${err.message}`, true);
  }
}

function stopCamera() {
  state.stream?.getTracks().forEach((t) => t.stop());
  state.stream = null;
  $("video").srcObject = null;
  $("snap").disabled = true;
  $("camera-start").textContent = state.input?.from === "camera" ? "Retake" : "Start camera";
  if (state.source === "camera") showSourceTools();
}

/** A square snapshot from the middle of the frame (the face models are square). */
async function snapshot() {
  const video = $("video");
  const side = Math.min(video.videoWidth, video.videoHeight);
  if (!side) return;
  const size = Math.min(side, 768);
  const canvas = document.createElement("canvas");
  canvas.width = canvas.height = size;
  const sx = (video.videoWidth - side) / 2;
  const sy = (video.videoHeight - side) / 2;
  canvas.getContext("2d").drawImage(video, sx, sy, side, side, 0, 0, size, size);
  const blob = await canvasToBlob(canvas, "image/jpeg", 0.92);
  stopCamera();
  cameraMessage("Got it. Retake for another picture.");
  $("camera-start").textContent = "Retake";
  await useImage(blob, "camera.jpg", "camera");
}

function setupCamera() {
  $("camera-start").addEventListener("click", () => (state.stream ? stopCamera() : startCamera()));
  $("snap").addEventListener("click", snapshot);
  for (const radio of document.querySelectorAll("input[name=source]")) {
    radio.addEventListener("change", () => setSource(radio.value));
  }
}

/* ---------- jobs: submit, poll, cancel ---------- */

/** The request for the current settings: {path, init, input, label} or null (nothing to send). */
async function buildRequest() {
  const model = currentModel();
  if (currentTask() === "generate") {
    const json = { model: model.name, n: Number($("count").value) };
    const seed = $("seed").value.trim();
    if (seed !== "") json.seed = Number(seed);
    if ($("class-name").value) json.class_name = $("class-name").value;
    return {
      path: "/v1/generate",
      init: { method: "POST", json },
      input: { kind: "generate", json },
      label: "Generating",
    };
  }
  let blob;
  let name;
  let input;
  if (state.source === "draw") {
    if (isBlank()) return null;
    blob = await drawingBlob();
    name = "drawing.png";
    input = { kind: "drawing", strokes: visibleStrokes(), drawingId: board.drawingId };
  } else {
    if (!state.input || state.input.from !== state.source) return null;
    ({ blob, name } = state.input);
    input = { kind: "image", ...state.input };
  }
  const form = new FormData();
  form.append("image", blob, name);
  form.append("model", $("model").value);
  if ($("fullsize").checked) form.append("output_size", "input");
  else form.append("keep_aspect", "true");
  if (!$("style-label").hidden && $("style").value) form.append("style", $("style").value);
  if (!$("variations-label").hidden) {
    if ($("variations").value !== "1") form.append("n", $("variations").value);
    const seed = $("variation-seed").value.trim();
    if (seed !== "") form.append("seed", seed);
  }
  return {
    path: "/v1/translate",
    init: { method: "POST", body: form },
    input,
    label: "Translating",
  };
}

/** Translate or generate with the current settings (live: a re-run after a stroke). */
async function run({ live = false } = {}) {
  const ticket = ++state.ticket; // from now on, answers to any older request are dropped
  stopRunning();
  const request = await buildRequest();
  if (ticket !== state.ticket) return;
  if (!request) {
    if (!live) {
      setStatus(state.source === "draw" ? "Draw something first." :
        state.source === "camera" ? "Take a picture first." : "Choose an image first.");
    }
    return;
  }
  const controller = new AbortController();
  const started = performance.now();
  const running = { controller, jobId: null };
  state.running = running;
  showProgress("Sending…", 10);
  clearError();
  try {
    const signal = controller.signal;
    const res = await api(`${request.path}?async=true`, { ...request.init, signal });
    let job = await res.json();
    running.jobId = job.id;
    if (ticket !== state.ticket) { // canceled while the job was being accepted
      api(`/v1/jobs/${job.id}`, { method: "DELETE" }).catch(() => {});
      return;
    }
    job = await poll(job, { ticket, signal, started, label: request.label });
    // a job that did not succeed answers its problem where its result would be
    const result = await api(`/v1/jobs/${job.id}/result`, { signal });
    const blob = await result.blob();
    if (ticket !== state.ticket) return;
    const elapsed = performance.now() - started;
    await showResult(blob, job, result.headers, request.input, { live, elapsed });
  } catch (err) {
    if (ticket !== state.ticket || err.name === "AbortError") return; // stale or canceled
    failed(err, request.input);
  } finally {
    if (ticket === state.ticket) {
      state.running = null;
      hideProgress();
    }
  }
}

async function poll(job, { ticket, signal, started, label }) {
  let delay = 80;
  while (!FINAL_STATES.has(job.state)) {
    const waited = seconds(performance.now() - started);
    if (job.state === "queued") showProgress(`Waiting in the queue… ${waited}`, 35);
    else showProgress(`${label} with ${job.model}… ${waited}`, 70);
    await sleep(delay, signal);
    delay = Math.min(delay * 1.5, 800);
    if (ticket !== state.ticket) throw new DOMException("Stale", "AbortError");
    job = await (await api(`/v1/jobs/${job.id}`, { signal })).json();
  }
  return job;
}

/** Abort the request in flight; a job still queued is canceled on the server too. */
function stopRunning() {
  const running = state.running;
  state.running = null;
  hideProgress();
  if (!running) return Promise.resolve(null);
  running.controller.abort();
  if (!running.jobId) return Promise.resolve(null);
  return api(`/v1/jobs/${running.jobId}`, { method: "DELETE" }).catch((err) => err);
}

/** The Cancel button: stop, and say what happened. */
async function cancelByUser() {
  if (!state.running) return;
  state.ticket++;
  setStatus("Canceled.");
  const answer = await stopRunning();
  if (answer?.status === 409) {
    setStatus("Canceled (it had already started; its result is ignored).");
  }
  $("go").focus();
}

function showProgress(text, percent) {
  $("progress").hidden = false;
  $("progress-bar").value = percent;
  setStatus(text);
}

function hideProgress() {
  $("progress").hidden = true;
  $("progress-bar").value = 0;
}

// problems with the file itself: the input is taken down, not just the result
const BAD_FILE_PROBLEMS = new Set([
  "unreadable-image", "unsupported-format", "unsupported-media-type", "image-too-large",
]);

/** A failed request: say why, and take down what no longer matches. */
function failed(err, input) {
  clearResult();
  if (BAD_FILE_PROBLEMS.has(describe(err).slug) && input.kind === "image") {
    forgetInput(); // the file is no good: do not keep showing it
    showSourceTools();
  }
  showError(err);
}

/* ---------- result, download, history ---------- */

function clearResult() {
  const out = $("output");
  out.hidden = true;
  out.removeAttribute("src");
  delete out.dataset.jobId;
  $("output-placeholder").hidden = false;
  $("result-caption").textContent = "";
  const link = $("download");
  link.setAttribute("aria-disabled", "true");
  link.removeAttribute("href");
  $("reuse").disabled = true;
  state.result = null;
  markCurrent(null);
}

async function showResult(blob, job, headers, input, { live, elapsed }) {
  const seed = headers.get("X-Seed");
  const url = URL.createObjectURL(blob);
  const out = $("output");
  out.src = url;
  await out.decode().catch(() => {});
  const ext = (blob.type.split("/")[1] || "png").replace("jpeg", "jpg");
  const entry = {
    id: state.nextHistoryId++,
    url,
    blob,
    input,
    model: $("model").value,
    job,
    size: `${out.naturalWidth}×${out.naturalHeight}`,
    seed,
    filename: `${job.model}-v${job.version}-${job.id.slice(0, 8)}.${ext}`,
    caption: [
      `${job.model} v${job.version}`,
      job.routed_by || "",
      seed !== null ? `seed ${seed}` : "",
      `${out.naturalWidth}×${out.naturalHeight} px`,
    ].filter(Boolean).join(" · "),
    timing: `Done in ${seconds(elapsed)} (model ${seconds(job.timings.compute_ms || 0)}, ` +
      `queue ${seconds(job.timings.queue_ms || 0)}).`,
    live,
  };
  display(entry);
  setStatus(entry.timing, true);
  if (!live) revealResult();
  if (seed !== null && $("seed").value.trim() === "") {
    $("seed-hint").textContent = `These came from seed ${seed}: type it in to get them again.`;
  }
  addHistory(entry);
}

/** Show a history entry in the result pane. */
function display(entry) {
  const out = $("output");
  if (out.src !== entry.url) out.src = entry.url;
  out.hidden = false;
  out.alt = `Result: ${entry.caption}`;
  out.dataset.jobId = entry.job.id;
  $("output-placeholder").hidden = true;
  $("result-caption").textContent = entry.caption;
  const link = $("download");
  link.href = entry.url;
  link.download = entry.filename;
  link.setAttribute("aria-disabled", "false");
  $("reuse").disabled = false;
  state.result = entry;
  markCurrent(entry);
}

/** On narrow screens the result is below the input: bring it into view (not in live mode). */
function revealResult() {
  const box = $("output").getBoundingClientRect();
  if (box.top < 0 || box.bottom > window.innerHeight) {
    const smooth = !window.matchMedia("(prefers-reduced-motion: reduce)").matches;
    $("result-stage").scrollIntoView({ block: "nearest", behavior: smooth ? "smooth" : "auto" });
  }
}

function addHistory(entry) {
  const last = state.history[0];
  const sameLiveDrawing = entry.live && last?.live && last.input.kind === "drawing" &&
    last.input.drawingId === entry.input.drawingId;
  if (sameLiveDrawing) dropHistory(last); // live mode keeps one entry per drawing
  state.history.unshift(entry);
  while (state.history.length > HISTORY_LIMIT) dropHistory(state.history[state.history.length - 1]);
  renderHistory();
}

function dropHistory(entry) {
  state.history = state.history.filter((h) => h !== entry);
  if (state.result !== entry) URL.revokeObjectURL(entry.url);
  if (entry.input.url && entry.input.url !== state.input?.url &&
      !state.history.some((h) => h.input.url === entry.input.url)) {
    URL.revokeObjectURL(entry.input.url);
  }
}

function renderHistory() {
  const list = $("history");
  list.replaceChildren();
  state.history.forEach((entry, i) => {
    const item = document.createElement("li");
    const button = document.createElement("button");
    button.type = "button";
    button.dataset.id = entry.id;
    button.title = `${entry.caption}: show it again`;
    const img = document.createElement("img");
    img.src = entry.url;
    img.alt = `Result ${state.history.length - i}: ${entry.caption}`;
    button.append(img);
    button.addEventListener("click", () => restore(entry));
    item.append(button);
    list.append(item);
  });
  $("history-empty").hidden = state.history.length > 0;
  $("history-clear").hidden = state.history.length === 0;
  markCurrent(state.result);
}

function markCurrent(entry) {
  for (const b of $("history").querySelectorAll("button")) {
    b.setAttribute("aria-current", String(entry !== null && Number(b.dataset.id) === entry?.id));
  }
}

/** Bring back a history entry: its model, its input and its result. */
async function restore(entry) {
  state.ticket++;
  stopRunning();
  clearError();
  const known = [...$("model").options].some((o) => o.value === entry.model);
  $("model").value = known ? entry.model : "auto";
  adaptControls();
  const input = entry.input;
  if (input.kind === "drawing") {
    setSource("draw");
    loadStrokes(input.strokes.map((s) => ({ ...s })));
    clearTimeout(state.liveTimer); // restoring is not a new stroke
  } else if (input.kind === "image") {
    state.input = { ...input };
    $("input").src = input.url;
    setSource(input.from);
  } else {
    $("count").value = String(input.json.n);
    $("seed").value = entry.seed ?? "";
    $("class-name").value = input.json.class_name || "";
  }
  display(entry);
  setStatus(`Restored: ${entry.timing}`, true);
}

function reuseResult() {
  const entry = state.result;
  if (!entry) return;
  $("model").value = "auto"; // a photo goes on to photo → drawing, a drawing to drawing → photo
  useImage(entry.blob, entry.filename, "upload");
}

/* ---------- live mode ---------- */

function onDrawingChanged() {
  clearTimeout(state.liveTimer);
  if (!$("live").checked || state.source !== "draw" || currentTask() === "generate") return;
  state.liveTimer = setTimeout(() => {
    if (isBlank()) {
      state.ticket++;
      stopRunning();
      clearResult();
      return;
    }
    run({ live: true });
  }, LIVE_DELAY_MS);
}

/* ---------- keyboard ---------- */

function onKey(event) {
  const typing = /^(INPUT|SELECT|TEXTAREA)$/.test(event.target.tagName) &&
    !["radio", "checkbox", "range"].includes(event.target.type);
  const mod = event.ctrlKey || event.metaKey;
  if (mod && event.key === "Enter") {
    event.preventDefault();
    run();
    return;
  }
  if (typing || state.source !== "draw" || currentTask() === "generate") return;
  const key = event.key.toLowerCase();
  if (mod && key === "z") {
    event.preventDefault();
    if (event.shiftKey) redo(); else undo();
  } else if (mod && key === "y") {
    event.preventDefault();
    redo();
  } else if (!mod && !event.altKey && key === "p") {
    $("tool-pen").click();
  } else if (!mod && !event.altKey && key === "e") {
    $("tool-eraser").click();
  } else if (!mod && (key === "[" || key === "]")) {
    const w = $("width");
    w.value = String(Number(w.value) + (key === "]" ? 1 : -1));
    $("width-value").value = w.value;
  }
}

/* ---------- start-up ---------- */

function setupControls() {
  $("model").addEventListener("change", () => {
    clearError();
    adaptControls();
  });
  $("go").addEventListener("click", () => run());
  $("cancel").addEventListener("click", cancelByUser);
  $("reuse").addEventListener("click", reuseResult);
  $("download").addEventListener("click", (e) => {
    if (!state.result) e.preventDefault();
  });
  $("live").addEventListener("change", onDrawingChanged);
  $("new-seed").addEventListener("click", () => {
    $("seed").value = String(Math.floor(Math.random() * 2 ** 31));
  });
  $("history-clear").addEventListener("click", () => {
    const current = state.result;
    [...state.history].forEach(dropHistory);
    state.result = current;
    renderHistory();
  });
  $("key-row").addEventListener("submit", (e) => {
    e.preventDefault();
    state.apiKey = $("api-key").value.trim();
    sessionStorage.setItem("s2i-api-key", state.apiKey);
    clearError();
    loadModels();
  });
  document.addEventListener("keydown", onKey);
  // back on the page: the service may serve new models or versions by now
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible") loadModels();
  });
}

function start() {
  setupBoard();
  setupUploads();
  setupCamera();
  setupControls();
  showSourceTools();
  loadModels();
  loadApiFeatures();
}

start();
