// The fastnst page: a camera (or a video or image file) drawn through a fastnst ONNX style model
// onto a canvas, with onnxruntime-web. Plain ES module, no build step. The maths after the model
// (strength, keep colours) is the Python player's (FramePipeline.postprocess), so the two agree.

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const isolated = window.crossOriginIsolated === true;

let ort = null;         // the onnxruntime-web module
let site = null;        // site.json: models, contract names
let C = null;           // the ONNX contract's names (site.contract)
let provider = "";      // what the page shows: WebAssembly or WebGPU
let threads = 1;
const models = [];      // {name, styles, session, hasStyle, inputName, outputName}
let source = null;      // {kind: 'camera'|'video'|'image', el, still}
let dirty = true;       // a still source: run again only when something changed
let recorder = null;
const input = document.createElement("canvas");  // the frame at the processing size
const inCtx = input.getContext("2d", { willReadFrequently: true });
const out = $("output");
const outCtx = out.getContext("2d");
// For tests and the benchmark: frames drawn, the settings' generation (changes) and the one the
// canvas shows (shown), and the last frame's timings (ms).
const page = (window.fastnst = { frames: 0, changes: 0, shown: -1, ready: false, stats: { fps: 0, grab: 0, model: 0, post: 0 }, models });

function message(text, kind = "error") {
  const m = $("message");
  m.textContent = text;
  m.className = kind;
  m.hidden = !text;
}

function errorText(e) {
  const text = String(e && e.message ? e.message : e);
  return text.split("\n")[0].slice(0, 300);
}

// ------------------------------------------------------------------ the model
// ONNX ModelProto.metadata_props (field 14, key 1 / value 2); only the top level is walked.
function onnxMetadata(bytes) {
  let pos = 0;
  const dec = new TextDecoder();
  const varint = () => {
    let x = 0, scale = 1, b;
    do {
      if (pos >= bytes.length) throw new Error("truncated");
      b = bytes[pos++];
      x += (b & 0x7f) * scale;
      scale *= 128;
    } while (b & 0x80);
    return x;
  };
  const fields = (end, onField) => {
    while (pos < end) {
      const tag = varint(), field = Math.floor(tag / 8), wire = tag % 8;
      if (wire === 0) varint();
      else if (wire === 1) pos += 8;
      else if (wire === 5) pos += 4;
      else if (wire === 2) {
        const n = varint(), stop = pos + n;
        if (stop > end) throw new Error("truncated");
        onField(field, pos, stop);
        pos = stop;
      } else throw new Error("not a protobuf message");
    }
  };
  const meta = {};
  let graph = false;
  fields(bytes.length, (field, start, stop) => {
    if (field === 7) graph = true;
    if (field !== 14) return;
    let key = "", value = "";
    fields(stop, (f, s, e) => {
      if (f === 1) key = dec.decode(bytes.subarray(s, e));
      if (f === 2) value = dec.decode(bytes.subarray(s, e));
    });
    meta[key] = value;
  });
  if (!graph) throw new Error("no graph in it");
  return meta;
}

// The same checks as StyleModel._check_io in Python: the fastnst contract or a clear reason.
function checkContract(session) {
  const ins = session.inputMetadata, outs = session.outputMetadata;
  const expected = `expected a uint8 (N, H, W, 3) BGR input "${C.input}" (and a float "${C.style}" input), as fastnst export writes`;
  const hasStyle = ins.length === 2 && ins[1].name === C.style && ins[1].type === "float32";
  if (ins.length !== 1 + hasStyle || outs.length < 1) throw new Error(`it has ${ins.length} inputs; ${expected}`);
  const shape = ins[0].shape || [];
  const sym = (d) => typeof d !== "number";
  if (shape.length !== 4 || !(shape[3] === 3 || sym(shape[3]))) throw new Error(`its input has shape [${shape}]; ${expected}`);
  if (ins[0].type !== "uint8" || outs[0].type !== "uint8") throw new Error(`it takes ${ins[0].type}; ${expected}`);
  if (!sym(shape[1]) || !sym(shape[2])) throw new Error(`it takes only ${shape[2]}x${shape[1]} frames; ${expected}, any H and W`);
  return hasStyle;
}

async function createSession(bytes) {
  const eps = provider === "WebGPU" ? ["webgpu", "wasm"] : ["wasm"];
  // Severity 4: onnxruntime's own errors reach the page as exceptions, not as console noise.
  // ?session={...}: more session options (JSON), for benchmarks.
  const extra = params.get("session") ? JSON.parse(params.get("session")) : {};
  return ort.InferenceSession.create(bytes, { executionProviders: eps, graphOptimizationLevel: "all", logSeverityLevel: 4, ...extra });
}

async function loadModel(bytes, name) {
  let meta;
  try {
    meta = onnxMetadata(bytes);
  } catch (e) {
    throw new Error(`${name} is not an ONNX model (${errorText(e)})`);
  }
  let session;
  try {
    session = await createSession(bytes);
  } catch (e) {
    throw new Error(`${name} is not a model onnxruntime can load (${errorText(e)})`);
  }
  try {
    const hasStyle = checkContract(session);
    let styles = meta[C.styles] ? JSON.parse(meta[C.styles]) : [meta[C.name] || name];
    if (!Array.isArray(styles) || !styles.length || !styles.every((s) => typeof s === "string")) throw new Error(`unreadable ${C.styles} metadata`);
    const size = hasStyle ? session.inputMetadata[1].shape : [styles.length];
    if (size.length !== 1 || size[0] !== styles.length) throw new Error(`a style input of shape [${size}] for ${styles.length} style names`);
    const model = { name, styles, session, hasStyle, inputName: session.inputNames[0], outputName: session.outputNames[0] };
    await probe(model);
    return model;
  } catch (e) {
    session.release();
    throw new Error(`${name} is not a fastnst model: ${errorText(e)}`);
  }
}

// One small frame through the model: the output must be uint8 BGR of the input's size.
async function probe(model) {
  const h = 32, w = 48;
  const res = await runModel(model, new Uint8Array(h * w * 3), w, h, oneHot(model, 0));
  if (res.dims.join() !== [1, h, w, 3].join() || res.type !== "uint8") {
    throw new Error(`it returns ${res.type} [${res.dims}] for a [1,${h},${w},3] frame; expected uint8 (1, H, W, 3) BGR`);
  }
}

function oneHot(model, i) {
  const w = new Float32Array(model.styles.length);
  w[i] = 1;
  return w;
}

async function runModel(model, bgr, w, h, weights) {
  const feeds = { [model.inputName]: new ort.Tensor("uint8", bgr, [1, h, w, 3]) };
  if (model.hasStyle) feeds[C.style] = new ort.Tensor("float32", weights, [weights.length]);
  const results = await model.session.run(feeds);
  return results[model.outputName];
}

async function addModelBytes(bytes, name) {
  const model = await loadModel(bytes, name);
  models.push(model);
  fillStyles();
  return model;
}

// ------------------------------------------------------------------ controls
// The style picker: one option per style of every model, value "model index/style index".
function fillStyles() {
  const sel = $("style");
  const keep = sel.value;
  sel.replaceChildren();
  models.forEach((m, mi) => {
    const group = document.createElement("optgroup");
    group.label = `${m.name} (${m.styles.length} style${m.styles.length > 1 ? "s" : ""})`;
    m.styles.forEach((s, si) => group.append(new Option(m.styles.length > 1 ? s : m.name, `${mi}/${si}`)));
    sel.append(group);
  });
  if (keep) sel.value = keep;
  fillBlend();
}

function current() {
  const [mi, si] = ($("style").value || "0/0").split("/").map(Number);
  return { model: models[mi], mi, si };
}

function fillBlend() {
  const { model, si } = current();
  const sel = $("blend-style");
  const keep = sel.value;
  sel.replaceChildren(new Option("none", ""));
  if (model && model.hasStyle) model.styles.forEach((s, i) => i !== si && sel.append(new Option(s, String(i))));
  sel.value = [...sel.options].some((o) => o.value === keep) ? keep : "";
  $("blend").disabled = sel.value === "";
}

// The style weights: (1 - t) of the picked style and t of the blend style (both of one model).
function styleWeights() {
  const { model, si } = current();
  const w = oneHot(model, si);
  const other = $("blend-style").value;
  if (other !== "" && model.hasStyle) {
    const t = Number($("blend").value) / 100;
    w[si] = 1 - t;
    w[Number(other)] += t;
  }
  return w;
}

function label() {
  const { model, si } = current();
  if (!model) return "frame";
  const other = $("blend-style").value;
  if (other === "" || !model.hasStyle) return model.styles.length > 1 ? model.styles[si] : model.name;
  const t = Number($("blend").value);
  return `${model.styles[si]}-${100 - t}-${model.styles[Number(other)]}-${t}`;
}

function wireControls() {
  const changed = () => { dirty = true; page.changes++; };
  $("style").addEventListener("change", () => { fillBlend(); changed(); });
  $("blend-style").addEventListener("change", () => { $("blend").disabled = $("blend-style").value === ""; changed(); });
  for (const [id, fmt] of [["blend", (v) => `${v}%`], ["strength", (v) => `${v}%`]]) {
    $(id).addEventListener("input", () => { $(`${id}-value`).textContent = fmt($(id).value); changed(); });
  }
  $("keep-colors").addEventListener("change", changed);
  $("width").addEventListener("change", changed);
  $("snapshot").addEventListener("click", snapshot);
  $("record").addEventListener("click", toggleRecord);
  $("camera").addEventListener("click", startCamera);
  $("source-file").addEventListener("change", (e) => e.target.files[0] && openFile(e.target.files[0]));
  $("model-file").addEventListener("change", (e) => e.target.files[0] && openFile(e.target.files[0]));
  document.addEventListener("dragover", (e) => { e.preventDefault(); document.body.classList.add("dragging"); });
  document.addEventListener("dragleave", () => document.body.classList.remove("dragging"));
  document.addEventListener("drop", (e) => {
    e.preventDefault();
    document.body.classList.remove("dragging");
    const file = e.dataTransfer && e.dataTransfer.files[0];
    if (file) openFile(file);
  });
}

// A dropped or picked file: a video or image becomes the source, anything else must be a model.
async function openFile(file) {
  if (/^(video|image)\//.test(file.type)) return useFile(file);
  try {
    const model = await addModelBytes(new Uint8Array(await file.arrayBuffer()), file.name.replace(/\.onnx$/i, ""));
    $("style").value = `${models.length - 1}/0`;
    fillBlend();
    dirty = true;
    page.changes++;
    message(`added ${model.name}: ${model.styles.length} style${model.styles.length > 1 ? "s" : ""}`, "info");
  } catch (e) {
    message(`${errorText(e)}. The current style keeps playing.`);
  }
}

function download(blob, name) {
  const a = document.createElement("a");
  a.href = URL.createObjectURL(blob);
  a.download = name;
  a.click();
  setTimeout(() => URL.revokeObjectURL(a.href), 10000);
}

function snapshot() {
  out.toBlob((blob) => download(blob, `fastnst-${label()}.png`), "image/png");
}

function toggleRecord() {
  const button = $("record");
  if (recorder) {
    recorder.stop();
    return;
  }
  if (!window.MediaRecorder) return message("This browser cannot record video (no MediaRecorder).");
  const chunks = [];
  recorder = new MediaRecorder(out.captureStream(30), { mimeType: "video/webm" });
  recorder.ondataavailable = (e) => e.data.size && chunks.push(e.data);
  recorder.onstop = () => {
    download(new Blob(chunks, { type: "video/webm" }), `fastnst-${label()}.webm`);
    recorder = null;
    button.textContent = "Record (WebM)";
    button.classList.remove("on");
  };
  recorder.start(1000);
  button.textContent = "Stop recording";
  button.classList.add("on");
}

// ------------------------------------------------------------------ sources
// A video source's frame is stylized once: a model faster than the camera waits for its next frame.
function watchFrames(src) {
  if (!src.el.requestVideoFrameCallback) return src;  // no callback: stylize back to back
  src.fresh = true;
  const onFrame = () => {
    if (source !== src) return;
    src.fresh = true;
    src.el.requestVideoFrameCallback(onFrame);
  };
  src.el.requestVideoFrameCallback(onFrame);
  return src;
}

function stopSource() {
  if (source && source.kind === "camera") source.el.srcObject.getTracks().forEach((t) => t.stop());
  if (source && source.url) URL.revokeObjectURL(source.url);
  source = null;
}

async function startCamera() {
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    return noCamera("this page cannot reach a camera here (it needs localhost or HTTPS)");
  }
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ video: { width: { ideal: 640 }, height: { ideal: 480 } }, audio: false });
  } catch (e) {
    const why = e.name === "NotAllowedError" ? "permission to use the camera was refused"
      : e.name === "NotFoundError" ? "no camera was found" : `the camera did not start (${e.name || errorText(e)})`;
    return noCamera(why);
  }
  const video = document.createElement("video");
  video.muted = true;
  video.playsInline = true;
  video.srcObject = stream;
  await video.play();
  stopSource();
  source = watchFrames({ kind: "camera", el: video, still: false });
  page.changes++;
  $("source-file").parentElement.classList.remove("wanted");
}

function noCamera(why) {
  const earlier = $("message").hidden || $("message").className !== "error" ? "" : `${$("message").textContent} `;
  message(`${earlier}No camera: ${why}. Pick a video or image file below (or drop one on the page) to play the styles on it.`);
  $("source-file").parentElement.classList.add("wanted");
}

async function useFile(file) {
  const url = URL.createObjectURL(file);
  try {
    let el;
    if (file.type.startsWith("image/")) {
      el = new Image();
      el.src = url;
      await el.decode();
    } else {
      el = document.createElement("video");
      Object.assign(el, { muted: true, loop: true, playsInline: true, src: url });
      await el.play();
    }
    stopSource();
    const still = file.type.startsWith("image/");
    source = { kind: still ? "image" : "video", el, still, url };
    if (!still) watchFrames(source);
    dirty = true;
    page.changes++;
    message("");
  } catch (e) {
    URL.revokeObjectURL(url);
    message(`cannot play ${file.name}: ${errorText(e)}`);
  }
}

// ------------------------------------------------------------------ the frame loop
let outImage = null;

// (w, h) for a source at the chosen width: even sides, as the Python player's processing_size.
function processingSize(sw, sh) {
  const target = Number($("width").value);
  if (!target || target === sw) return [sw, sh];
  return [Math.max(2, Math.floor(target / 2) * 2), Math.max(2, Math.round(sh * target / sw / 2) * 2)];
}

async function step() {
  const el = source.el;
  const sw = el.videoWidth || el.naturalWidth, sh = el.videoHeight || el.naturalHeight;
  if (!sw || !sh) return false;
  const [w, h] = processingSize(sw, sh);
  const { model } = current();
  const generation = page.changes;
  const t0 = performance.now();
  if (input.width !== w || input.height !== h) Object.assign(input, { width: w, height: h });
  inCtx.drawImage(el, 0, 0, w, h);
  const rgba = inCtx.getImageData(0, 0, w, h).data;
  const n = w * h;
  const bgr = new Uint8Array(n * 3);  // a new one each frame: the proxy worker takes the buffer
  for (let i = 0, j = 0; i < n * 4; i += 4, j += 3) {
    bgr[j] = rgba[i + 2]; bgr[j + 1] = rgba[i + 1]; bgr[j + 2] = rgba[i];
  }
  const t1 = performance.now();
  const strength = Number($("strength").value) / 100;
  const styled = strength > 0 ? (await runModel(model, bgr, w, h, styleWeights())).data : bgr;
  const t2 = performance.now();
  if (!outImage || outImage.width !== w || outImage.height !== h) outImage = new ImageData(w, h);
  postprocess(styled, rgba, outImage.data, n, strength, $("keep-colors").checked);
  if (out.width !== w || out.height !== h) Object.assign(out, { width: w, height: h });
  outCtx.putImageData(outImage, 0, 0);
  page.shown = generation;
  const t3 = performance.now();
  Object.assign(page.stats, { grab: t1 - t0, model: t2 - t1, post: t3 - t2 });
  return true;
}

// OpenCV's 8-bit YCrCb fixed point (14 bits), so keep-colours matches luminance_transfer exactly.
const descale = (x) => (x + 8192) >> 14;
const clamp = (x) => (x < 0 ? 0 : x > 255 ? 255 : x);

// styled is BGR, orig and dst RGBA. Strength: cv2.addWeighted; then luminance_transfer.
function postprocess(styled, orig, dst, n, strength, keepColors) {
  const s = strength, r = 1 - strength;
  for (let i = 0, j = 0; i < n * 4; i += 4, j += 3) {
    let b = styled[j], g = styled[j + 1], red = styled[j + 2];
    const ob = orig[i + 2], og = orig[i + 1], or = orig[i];
    if (s < 1) {
      b = clamp(Math.round(b * s + ob * r));
      g = clamp(Math.round(g * s + og * r));
      red = clamp(Math.round(red * s + or * r));
    }
    if (keepColors) {
      const y = descale(b * 1868 + g * 9617 + red * 4899);  // the stylized luminance
      const oy = descale(ob * 1868 + og * 9617 + or * 4899);
      const cr = clamp(descale((or - oy) * 11682 + (128 << 14))) - 128;  // the original's chroma
      const cb = clamp(descale((ob - oy) * 9241 + (128 << 14))) - 128;
      b = clamp(y + descale(cb * 29049));
      g = clamp(y + descale(cb * -5636 + cr * -11698));
      red = clamp(y + descale(cr * 22987));
    }
    dst[i] = red; dst[i + 1] = g; dst[i + 2] = b; dst[i + 3] = 255;
  }
}

async function loop() {
  let last = performance.now(), count = 0, busy = false;
  const tick = async () => {
    if (!busy && source && models.length && (source.still ? dirty : source.fresh !== false)) {
      busy = true;
      dirty = false;
      if (source.fresh) source.fresh = false;
      try {
        if (await step()) {
          page.frames++;
          count++;
        }
      } catch (e) {
        message(`the model failed on this frame: ${errorText(e)}`);
        await new Promise((r) => setTimeout(r, 1000));  // do not spin on a failing model
      }
      busy = false;
    }
    const now = performance.now();
    if (now - last >= 1000) {
      page.stats.fps = (count * 1000) / (now - last);
      last = now;
      count = 0;
      showStatus();
    }
    // Another frame at once when the last one ran; no busy loop when idle (a still image).
    setTimeout(tick, source && !source.still ? 0 : 50);
  };
  tick();
}

function showStatus() {
  const t = page.stats;
  const why = isolated ? "" : " (no cross-origin isolation headers: single-threaded)";
  const timing = source && !source.still ? ` · ${t.fps.toFixed(1)} fps` : "";
  const head = `${provider} · ${threads} thread${threads > 1 ? "s" : ""}${why}`;
  const frame = page.frames ? ` · ${out.width}x${out.height}${timing} · model ${t.model.toFixed(0)} ms, pixels ${(t.grab + t.post).toFixed(0)} ms` : "";
  $("status").textContent = head + frame;
}

// ------------------------------------------------------------------ start
async function fetchBytes(url) {
  const res = await fetch(url);
  if (!res.ok) throw new Error(`cannot load ${url}: HTTP ${res.status}`);
  return new Uint8Array(await res.arrayBuffer());
}

async function main() {
  wireControls();
  if (params.get("width")) $("width").value = params.get("width");
  try {
    const res = await fetch("site.json");
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    site = await res.json();
  } catch (e) {
    $("status").textContent = "not started";
    return message(`cannot load site.json (${errorText(e)}): serve this page with fastnst serve, or fastnst serve --export`);
  }
  C = site.contract;
  const maxThreads = Math.min(4, navigator.hardwareConcurrency || 1);
  threads = isolated ? Math.min(maxThreads, Number(params.get("threads")) || maxThreads) : 1;
  const gpu = site.webgpu && navigator.gpu && params.get("provider") !== "wasm" && (await navigator.gpu.requestAdapter().catch(() => null));
  provider = gpu ? "WebGPU" : "WebAssembly";
  try {
    ort = await import(gpu ? "./vendor/ort.webgpu.min.mjs" : "./vendor/ort.wasm.min.mjs");
  } catch (e) {
    $("status").textContent = "not started";
    return message(`cannot load onnxruntime-web (${errorText(e)})`);
  }
  ort.env.wasm.numThreads = threads;
  // The model runs in onnxruntime's worker: the page stays responsive while a frame is stylized.
  ort.env.wasm.proxy = provider === "WebAssembly" && params.get("proxy") !== "0";
  ort.env.logLevel = "fatal";
  $("runtime").textContent = site.onnxruntime;
  const wanted = params.getAll("model");
  const list = wanted.length ? wanted.map((url) => ({ url, name: url.split("/").pop().replace(/\.onnx$/i, "") })) : site.models;
  const problems = [];
  for (const m of list) {
    try {
      await addModelBytes(await fetchBytes(m.url), m.name);
    } catch (e) {
      problems.push(errorText(e));
    }
  }
  showStatus();
  if (problems.length) message(problems.join("; ") + (models.length ? "" : ". No model to play: drop a .onnx file on the page."));
  page.ready = true;
  loop();
  await startCamera();
}

main().catch((e) => message(`the page failed to start: ${errorText(e)}`));
