// Monitoring (admin): per model version over a window, the figures of GET /monitoring and the drift flag.
import { getJSON } from "./api.js";
import { $, badge, el, fill, kv, num, pct, showError } from "./dom.js";

const ci = (p) => (p.value === null ? "—" : `${pct(p.value)} (95 % CI ${pct(p.ci95[0])}–${pct(p.ci95[1])}, n ${p.n})`);

function versionView(v) {
  const dl = el("dl", { class: "kv" });
  kv(dl, [
    ["Images", `${v.volume} (${v.screened} screened)`],
    ["Refusal rate", pct(v.refusal_rate)],
    ["Positive rate", pct(v.positive_rate)],
    ["Expected positive rate", v.expected_positive_rate ? `${pct(v.expected_positive_rate[0])}–${pct(v.expected_positive_rate[1])}` : "—"],
    ["PSI against the card", num(v.psi, 3)],
    ["Reader verdicts", String(v.feedback.cases)],
    ["Agreement", ci(v.feedback.agreement)],
    ["Sensitivity", ci(v.feedback.sensitivity)],
    ["Specificity", ci(v.feedback.specificity)],
  ]);
  const refusals = Object.entries(v.refusals);
  return el("section", { class: "card-box" },
    el("h3", {}, `${v.model} ${v.version} `, v.drift ? badge("drift", "failed") : badge("no drift", "done")),
    dl,
    refusals.length ? el("p", { class: "legend", text: `Refusals: ${refusals.map(([k, n]) => `${k} ${n}`).join(", ")}` }) : null);
}

export async function loadMonitoring() {
  showError($("monitoring-error"), null);
  try {
    const report = await getJSON(`monitoring?window=${encodeURIComponent($("monitoring-window").value)}`);
    fill($("monitoring-list"),
      el("p", { class: "legend", text: `From ${report.since} to ${report.until}.` }),
      report.versions.length ? report.versions.map(versionView) : el("p", { text: "Nothing screened in this window." }));
  } catch (err) {
    fill($("monitoring-list"));
    showError($("monitoring-error"), err);
  }
}

export function initMonitoring() {
  $("monitoring-form").addEventListener("submit", (e) => { e.preventDefault(); loadMonitoring(); });
}
