// Screen an image: one POST /predict (heatmap=layer&preview=true) draws the radiograph as the model read it
// with the Grad-CAM layer over it, so opacity and on/off need no second request; the server's overlay is
// exactly the layer at 100 %.
import { ApiError, call, fileForm } from "./api.js";
import { $, el, fill, kv, num, showError, download } from "./dom.js";
import { splitRelated } from "./multipart.js";

let current = null; // { file, answer }
let asked = 0; // requests started: an answer to an older one (the user picked again meanwhile) is dropped

function isDicom(file, answer) {
  return (answer && answer.image && answer.image.format === "dicom") || /\.(dcm|dicom)$/i.test(file.name);
}

function drawBar(answer) {
  const p = answer.probabilities.PNEUMONIA;
  const fillBar = $("pbar-fill");
  fillBar.style.width = `${(100 * p).toFixed(2)}%`;
  fillBar.classList.toggle("positive", answer.prediction === "PNEUMONIA");
  $("pbar-threshold").style.left = `${(100 * answer.threshold).toFixed(2)}%`;
  const urgent = $("pbar-urgent");
  urgent.hidden = answer.urgent_threshold === null;
  if (answer.urgent_threshold !== null) urgent.style.left = `${(100 * answer.urgent_threshold).toFixed(2)}%`;
  const words = `P(pneumonia) ${num(p, 4)}; operating threshold ${num(answer.threshold, 4)}` +
    (answer.urgent_threshold !== null ? `; urgent at ${num(answer.urgent_threshold, 4)}` : "");
  $("pbar").setAttribute("aria-label", words);
  fill($("pbar-legend"), words);
}

function showFacts(answer) {
  const p = answer.probabilities.PNEUMONIA;
  const verdict = $("verdict");
  verdict.textContent = answer.prediction;
  const prob = $("screen-result");
  prob.dataset.probability = String(p);
  prob.dataset.prediction = answer.prediction;
  const priority = $("priority");
  priority.textContent = answer.priority;
  priority.className = `badge ${answer.priority}`;
  drawBar(answer);
  kv($("screen-facts"), [
    ["P(pneumonia)", num(p, 4)],
    ["Model", `${answer.model.name} ${answer.model.version}`],
    ["Input", `${answer.image.format.toUpperCase()} ${answer.image.width} × ${answer.image.height}`],
  ]);
  const integ = answer.integrity;
  $("integrity").textContent = integ
    ? `${integ.accepted ? "Accepted" : "Refused"}: score ${num(integ.score, 4)} (threshold ${num(integ.threshold, 2)})` +
      (integ.reason ? ` — ${integ.reason}` : "")
    : "The integrity check is off on this server.";
  fill($("warnings"), (answer.warnings || []).map((w) => el("li", { text: w })));
  const t = answer.timing_ms;
  kv($("timings"), [["decode", num(t.decode, 1)], ["integrity", num(t.integrity, 1)], ["preprocess", num(t.preprocess, 1)],
    ["infer", num(t.infer, 1)], ["explain", num(t.explain, 1)], ["total", num(t.total, 1)]]);
}

async function showImages(answer) {
  const xray = $("xray");
  const heat = $("heat");
  xray.src = `data:${answer.preview.media_type};base64,${answer.preview.data}`;
  heat.src = `data:${answer.heatmap.media_type};base64,${answer.heatmap.data}`;
  await Promise.all([xray.decode(), heat.decode()]);
  $("heat-caption").textContent = `Grad-CAM evidence for ${answer.heatmap.target} (brighter: stronger evidence)`;
  applyOverlay();
}

function applyOverlay() {
  const on = $("overlay-on").checked;
  const opacity = Number($("opacity").value);
  $("heat").hidden = !on;
  $("heat").style.opacity = String(opacity / 100);
  $("opacity").disabled = !on;
  $("opacity-value").textContent = `${opacity} %`;
}

export function notEvaluated(err) {
  const integ = err.body && err.body.integrity;
  if (err.status !== 422 || !integ) return err.detail;
  return `Not evaluated: ${err.detail} (integrity score ${num(integ.score, 3)}, threshold ${num(integ.threshold, 2)})`;
}

async function screen(file) {
  const target = $("screen-target").value;
  const busy = $("screen-busy");
  const result = $("screen-result");
  const mine = ++asked;
  delete result.dataset.renderMs;
  showError($("screen-error"), null);
  fill($("dicom-links"));
  busy.textContent = `Screening ${file.name}…`;
  const t0 = performance.now();
  try {
    const response = await call(`predict?heatmap=layer&preview=true&target=${encodeURIComponent(target)}`, {
      method: "POST", body: fileForm(file), accept: "application/json" });
    const tAnswer = performance.now();
    const answer = await response.json();
    if (mine !== asked) return;
    current = { file, answer };
    showFacts(answer);
    result.hidden = false;
    await showImages(answer);
    const shown = performance.now() - tAnswer;
    result.dataset.answerMs = (tAnswer - t0).toFixed(1);
    result.dataset.renderMs = shown.toFixed(1);
    $("render-time").textContent = `Answer in ${(tAnswer - t0).toFixed(0)} ms; shown ${shown.toFixed(0)} ms after it.`;
    $("download-dicom").hidden = !isDicom(file, answer);
    busy.textContent = `Screened ${file.name}.`;
  } catch (err) {
    if (mine !== asked) return;
    result.hidden = true;
    busy.textContent = "";
    showError($("screen-error"), err instanceof ApiError ? Object.assign(err, { detail: notEvaluated(err) }) : err);
  }
}

async function downloadOverlay() {
  if (!current) return;
  const xray = $("xray");
  const canvas = el("canvas", { width: xray.naturalWidth, height: xray.naturalHeight });
  const ctx = canvas.getContext("2d");
  ctx.drawImage(xray, 0, 0);
  if ($("overlay-on").checked) {
    ctx.globalAlpha = Number($("opacity").value) / 100;
    ctx.drawImage($("heat"), 0, 0, canvas.width, canvas.height);
  }
  const blob = await new Promise((resolve) => canvas.toBlob(resolve, "image/png"));
  download(blob, `${current.file.name.replace(/\.[^.]+$/, "")}-overlay.png`);
}

async function getDicomResults() {
  if (!current) return;
  const button = $("download-dicom");
  button.disabled = true;
  showError($("screen-error"), null);
  try {
    const response = await call("predict?output=dicom", { method: "POST", body: fileForm(current.file), accept: "multipart/related" });
    const parts = splitRelated(new Uint8Array(await response.arrayBuffer()), response.headers.get("Content-Type"));
    fill($("dicom-links"), parts.map((p) => {
      const href = URL.createObjectURL(new Blob([p.body], { type: "application/dicom" }));
      return el("li", {}, el("a", { href, download: `${p.name}.dcm`, text: `${p.label} (${(p.body.length / 1024).toFixed(0)} KB)` }));
    }));
  } catch (err) {
    showError($("screen-error"), err);
  } finally {
    button.disabled = false;
  }
}

export function initScreen() {
  const input = $("screen-file");
  const drop = $("drop");
  input.addEventListener("change", () => {
    if (!input.files.length) return;
    screen(input.files[0]);
    input.value = ""; // so that picking the same file again screens it again (the status line names it)
  });
  $("screen-target").addEventListener("change", () => { if (current) screen(current.file); });
  for (const kind of ["dragenter", "dragover"]) drop.addEventListener(kind, (e) => { e.preventDefault(); drop.classList.add("over"); });
  for (const kind of ["dragleave", "drop"]) drop.addEventListener(kind, () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    if (e.dataTransfer.files.length) screen(e.dataTransfer.files[0]);
  });
  $("screen-form").addEventListener("submit", (e) => e.preventDefault());
  $("overlay-on").addEventListener("change", applyOverlay);
  $("opacity").addEventListener("input", applyOverlay);
  $("download-overlay").addEventListener("click", downloadOverlay);
  $("download-dicom").addEventListener("click", getDicomResults);
}
