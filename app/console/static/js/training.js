// Training (admin): upload a dataset with progress, start a fine-tune, follow it live, cancel and resume.
import { ApiError, call, getJSON, sendJSON, upload } from "./api.js";
import { lineChart } from "./chart.js";
import { $, badge, el, fill, num, showError, table } from "./dom.js";

const LIVE = new Set(["queued", "running"]);
let followed = null; // the job id whose detail is shown
let timer = null;

const fail = (err) => showError($("training-error"), err);

function datasetReport(d) {
  const rows = Object.entries(d.counts).map(([split, byClass]) => [split, String(byClass.NORMAL ?? 0), String(byClass.PNEUMONIA ?? 0)]);
  return el("div", {},
    el("p", { text: `Dataset ${d.id} (${d.filename ?? "archive"}): accepted images below; ${d.rejected_count} file(s) rejected.` }),
    table(["split", "NORMAL", "PNEUMONIA"], rows),
    d.rejected.length ? el("details", {}, el("summary", { text: `Rejected files (${d.rejected_count})` }),
      el("ul", {}, d.rejected.map((r) => el("li", { text: `${r.file}: ${r.reason}` })))) : null);
}

async function uploadDataset(e) {
  e.preventDefault();
  fail(null);
  const file = $("dataset-file").files[0];
  if (!file) return;
  const bar = $("dataset-progress");
  const report = $("dataset-report");
  bar.value = 0;
  report.textContent = `Uploading ${file.name}…`;
  try {
    const d = await upload("datasets", file, (f) => { bar.value = Math.round(100 * f); });
    bar.value = 100;
    fill(report, datasetReport(d));
    await loadDatasets(d.id);
  } catch (err) {
    report.textContent = "";
    fail(err);
  }
}

async function loadDatasets(select) {
  const { datasets } = await getJSON("datasets");
  const node = $("job-dataset");
  fill(node, datasets.map((d) => el("option", { value: d.id, selected: d.id === select,
    text: `${d.filename ?? d.id} — ${Object.values(d.counts).reduce((n, c) => n + (c.NORMAL ?? 0) + (c.PNEUMONIA ?? 0), 0)} images (${d.id.slice(0, 8)})` })));
}

async function loadBaseModels() {
  const { models, active } = await getJSON("models");
  fill($("job-base"), models.map((m) => el("option", { value: m.name, selected: active && m.name === active.name,
    text: `${m.name} ${m.version}${m.active ? " (active)" : ""}` })));
}

async function startJob(e) {
  e.preventDefault();
  fail(null);
  const body = {
    dataset: $("job-dataset").value, base_model: $("job-base").value || null,
    epochs: Number($("job-epochs").value), learning_rate: Number($("job-lr").value),
    batch_size: Number($("job-batch").value), val_fraction: Number($("job-val").value),
    seed: Number($("job-seed").value), freeze_backbone: $("job-freeze").checked, auto_promote: $("job-promote").checked,
  };
  try {
    const job = await sendJSON("train", "POST", body);
    await loadJobs();
    follow(job.id);
  } catch (err) { fail(err); }
}

function progressView(job) {
  const p = job.progress || {};
  const history = job.metrics || [];
  const stepFraction = p.total_steps ? p.step / p.total_steps : job.state === "succeeded" ? 1 : 0;
  return el("div", { id: "job-progress", dataset: { state: job.state, job: job.id } },
    el("h4", {}, `Job ${job.id.slice(0, 8)} `, badge(job.state)),
    el("label", { for: "job-steps", text: "Progress " }),
    el("progress", { id: "job-steps", max: 100, value: Math.round(100 * stepFraction) }),
    el("dl", { class: "kv" },
      el("dt", { text: "Epoch" }), el("dd", { text: p.epoch ? `${p.epoch} of ${p.epochs}` : "—" }),
      el("dt", { text: "Step" }), el("dd", { text: p.total_steps ? `${p.step} of ${p.total_steps}` : "—" }),
      el("dt", { text: "Images/s" }), el("dd", { text: num(p.images_per_s, 1) }),
      el("dt", { text: "ETA (s)" }), el("dd", { text: LIVE.has(job.state) ? num(p.eta_s, 0) : "—" }),
      el("dt", { text: "Loss" }), el("dd", { text: num(p.loss, 4) }),
      el("dt", { text: "Model" }), el("dd", { text: job.model ? `${job.model} ${job.model_version}${job.promoted ? " (activated)" : ""}` : "—" }),
      job.error ? [el("dt", { text: "Error" }), el("dd", { text: job.error })] : null),
    history.length ? lineChart([
      { name: "val AUROC", cls: "auroc", values: history.map((h) => h.val_auroc ?? null), range: [0.5, 1] },
      { name: "train loss", cls: "loss", values: history.map((h) => h.train_loss ?? null) },
    ], { label: `Validation AUROC (green) and training loss (red) per epoch; last AUROC ${num(history.at(-1).val_auroc, 4)}` }) : null,
    el("p", {},
      LIVE.has(job.state) ? el("button", { type: "button", class: "secondary", text: "Cancel job", onclick: () => act(job.id, "DELETE", "") }) : null,
      job.state === "interrupted" ? el("button", { type: "button", text: "Resume job", onclick: () => act(job.id, "POST", "/resume") }) : null));
}

async function act(id, method, suffix) {
  fail(null);
  try {
    await call(`train/${id}${suffix}`, { method });
  } catch (err) { fail(err); }
  await loadJobs();
  follow(id);
}

async function follow(id) {
  followed = id;
  clearTimeout(timer);
  try {
    const job = await getJSON(`train/${id}`);
    if (followed !== id) return;
    fill($("job-detail"), progressView(job));
    if (LIVE.has(job.state)) timer = setTimeout(() => follow(id), 1000);
    else await loadJobs();
  } catch (err) {
    if (!(err instanceof ApiError) || err.status !== 404) fail(err);
  }
}

async function loadJobs() {
  const { jobs } = await getJSON("train?limit=20");
  fill($("jobs-list"), jobs.length ? table(["job", "kind", "state", "created", "dataset", "model", "details"], jobs.map((j) => [
    el("span", { class: "mono", text: j.id.slice(0, 8) }), j.kind, badge(j.state), j.created_at.replace("T", " ").slice(0, 19),
    String(j.request.dataset ?? "—"), j.model ? `${j.model} ${j.model_version}` : "—",
    el("button", { type: "button", class: "secondary", text: "Show", "aria-label": `Show job ${j.id.slice(0, 8)}`, onclick: () => follow(j.id) }),
  ])) : el("p", { text: "No jobs yet." }));
}

export async function loadTraining() {
  fail(null);
  try {
    await Promise.all([loadDatasets(), loadBaseModels(), loadJobs()]);
    if (followed) follow(followed);
  } catch (err) { fail(err); }
}

export function initTraining() {
  $("dataset-form").addEventListener("submit", uploadDataset);
  $("job-form").addEventListener("submit", startJob);
  $("jobs-refresh").addEventListener("click", loadTraining);
}
