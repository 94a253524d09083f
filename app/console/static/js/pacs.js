// PACS results: recent STOW-RS results grouped by study, their state and delivery; re-deliver (admin).
import { getJSON, sendJSON } from "./api.js";
import { $, badge, el, fill, isAdmin, num, showError } from "./dom.js";

const when = (t) => (t ? t.replace("T", " ").slice(0, 19) : "—");

function delivery(state, attempts, error, at) {
  return el("span", {}, badge(state), ` ${attempts} attempt(s)`, at ? `, ${when(at)}` : "", error ? el("div", { class: "legend", text: error }) : null);
}

async function redeliver(id) {
  showError($("pacs-error"), null);
  try {
    const r = await sendJSON(`dicomweb/results/${id}/deliver`, "POST", undefined);
    $("pacs-answer").textContent = `Result ${id.slice(0, 8)} queued for delivery again: PACS ${r.delivery}, FHIR ${r.fhir_delivery}.`;
  } catch (err) { showError($("pacs-error"), err); }
  await loadPacs();
}

export async function loadPacs() {
  showError($("pacs-error"), null);
  try {
    const { results } = await getJSON("dicomweb/results?limit=200");
    const studies = new Map();
    for (const r of results) {
      if (!studies.has(r.study_instance_uid)) studies.set(r.study_instance_uid, []);
      studies.get(r.study_instance_uid).push(r);
    }
    const admin = isAdmin();
    const columns = ["instance", "state", "prediction", "P(pneumonia)", "priority", "model", "PACS delivery", "FHIR delivery",
      ...(admin ? ["action"] : [])];
    const row = (r) => el("tr", {},
      el("td", { class: "mono", title: r.source_sop_instance_uid, text: r.source_sop_instance_uid.slice(-20) }),
      el("td", {}, badge(r.state), r.error ? el("div", { class: "legend", text: r.error }) : null),
      el("td", { text: r.prediction ?? "—" }), el("td", { class: "num", text: num(r.probability_pneumonia, 4) }),
      el("td", {}, r.priority ? badge(r.priority) : "—"), el("td", { text: r.model ?? "—" }),
      el("td", {}, delivery(r.delivery, r.delivery_attempts, r.delivery_error, r.delivered_at)),
      el("td", {}, delivery(r.fhir_delivery, r.fhir_delivery_attempts, r.fhir_delivery_error, r.fhir_delivered_at)),
      admin ? el("td", {}, el("button", { type: "button", class: "secondary", text: "Re-deliver",
        "aria-label": `Re-deliver result ${r.id.slice(0, 8)}`, onclick: () => redeliver(r.id) })) : null);
    const study = ([uid, rows]) => el("section", { class: "card-box" },
      el("h3", {}, "Study ", el("span", { class: "mono", text: uid })),
      el("table", {}, el("thead", {}, el("tr", {}, columns.map((c) => el("th", { scope: "col", text: c })))),
        el("tbody", {}, rows.map(row))));
    fill($("pacs-list"), studies.size ? [...studies].map(study) : el("p", { text: "No STOW-RS results yet." }));
  } catch (err) {
    fill($("pacs-list"));
    showError($("pacs-error"), err);
  }
}

export function initPacs() {
  $("pacs-refresh").addEventListener("click", loadPacs);
}
