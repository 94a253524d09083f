// Models: every model with its card, which one is active; activate or roll back (admin).
import { call, getJSON } from "./api.js";
import { $, badge, el, fill, isAdmin, num, showError } from "./dom.js";

let previous = null; // the model that was active before this console's last activation: what "roll back" activates

function metricsTable(card) {
  const rows = [];
  for (const [split, m] of Object.entries(card.metrics || {})) {
    if (!m) continue;
    rows.push(el("tr", {}, el("th", { scope: "row", text: split.replaceAll("_", " ") }),
      ...["n", "auroc", "sensitivity", "specificity", "accuracy", "ece"].map((k) =>
        el("td", { class: "num", text: k === "n" ? String(m[k] ?? "—") : num(m[k], 3) }))));
  }
  if (!rows.length) return el("p", { text: "No metrics on the card." });
  return el("table", {}, el("thead", {}, el("tr", {}, ["split", "n", "AUROC", "sensitivity", "specificity", "accuracy", "ECE"]
    .map((c) => el("th", { scope: "col", text: c })))), el("tbody", {}, rows));
}

function counts(card) {
  const c = (card.training && card.training.counts) || {};
  const parts = Object.entries(c).map(([split, byClass]) =>
    `${split}: ${Object.entries(byClass).map(([k, v]) => `${v} ${k}`).join(", ")}`);
  return parts.length ? parts.join("; ") : "—";
}

function cardView(entry) {
  const card = entry.card;
  return el("details", {},
    el("summary", { text: `Model card of ${entry.name} ${entry.version}` }),
    el("dl", { class: "kv" },
      el("dt", { text: "Architecture" }), el("dd", { text: `${card.architecture} (${card.num_parameters ?? "?"} parameters)` }),
      el("dt", { text: "Operating threshold" }), el("dd", { text: num(card.threshold, 4) }),
      el("dt", { text: "Urgent threshold" }), el("dd", { text: card.urgent_threshold == null ? "— (urgent = positive)" : num(card.urgent_threshold, 4) }),
      el("dt", { text: "Calibration" }), el("dd", { text: `temperature ${num(card.temperature, 3)}, bias ${num(card.bias ?? 0, 3)}` }),
      el("dt", { text: "How the point was chosen" }), el("dd", { text: card.operating_point || "—" }),
      el("dt", { text: "Training data" }), el("dd", { text: counts(card) }),
      el("dt", { text: "Intended use" }), el("dd", { text: card.intended_use || "—" }),
      el("dt", { text: "Limitations" }), el("dd", { text: card.limitations || "—" }),
      el("dt", { text: "SHA-256" }), el("dd", { class: "mono", text: card.sha256 })),
    metricsTable(card));
}

async function activate(name, label) {
  const answerNode = $("models-answer");
  showError($("models-error"), null);
  answerNode.textContent = `${label} ${name}…`;
  try {
    const before = (await getJSON("models")).active;
    const answer = await (await call(`models/${encodeURIComponent(name)}/activate`, { method: "POST" })).json();
    if (before && before.name !== name) previous = before.name;
    answerNode.textContent = `${answer.model.name} ${answer.model.version} is serving: ${answer.status}, ${answer.backend} on ${answer.device}.`;
  } catch (err) {
    answerNode.textContent = "";
    showError($("models-error"), err);
  }
  await loadModels();
}

export async function loadModels() {
  showError($("models-error"), null);
  try {
    const list = await getJSON("models");
    const admin = isAdmin();
    const rows = list.models.map((m) => el("tr", {},
      el("td", {}, el("strong", { text: m.name }), m.active ? [" ", badge("active")] : null),
      el("td", { text: m.version }), el("td", { text: m.source }),
      el("td", { class: "num", text: num(m.card.threshold, 3) }),
      el("td", {}, cardView(m)),
      !admin ? null : el("td", {}, m.active
        ? (previous && previous !== m.name
          ? el("button", { type: "button", class: "secondary", text: `Roll back to ${previous}`, onclick: () => activate(previous, "Rolling back to") })
          : null)
        : el("button", { type: "button", text: "Activate", "aria-label": `Activate ${m.name}`, onclick: () => activate(m.name, "Activating") }))));
    fill($("models-list"), el("table", {},
      el("thead", {}, el("tr", {}, ["model", "version", "source", "threshold", "card", ...(admin ? ["action"] : [])]
        .map((c) => el("th", { scope: "col", text: c })))), el("tbody", {}, rows)));
  } catch (err) {
    fill($("models-list"));
    showError($("models-error"), err);
  }
}

export function initModels() {
  $("models-refresh").addEventListener("click", loadModels);
}
