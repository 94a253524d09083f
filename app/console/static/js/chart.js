// A small SVG line chart (validation AUROC and loss per epoch): no library, no inline style.
import { el } from "./dom.js";

const NS = "http://www.w3.org/2000/svg";
const svg = (tag, attrs = {}) => {
  const node = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  return node;
};

/** series: [{name, cls, values: [number|null], range?: [lo, hi]}] over epochs 1..n; each series on its own
 * scale: ``range`` when given (AUROC: 0.5–1), else from 0 to its largest value. */
export function lineChart(series, { width = 360, height = 140, label }) {
  const pad = 28;
  const top = 22; // room for the legend above the plot
  const n = Math.max(...series.map((s) => s.values.length), 1);
  const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, width, height, class: "chart", role: "img", "aria-label": label });
  root.append(svg("line", { x1: pad, y1: height - pad, x2: width - 8, y2: height - pad, class: "axis" }));
  const x = (i) => pad + (n === 1 ? 0 : (i * (width - pad - 12)) / (n - 1));
  for (let i = 0; i < n; i++) {
    const t = svg("text", { x: x(i) - 3, y: height - pad + 14 });
    t.textContent = String(i + 1);
    root.append(t);
  }
  series.forEach((s, k) => {
    const vals = s.values.filter((v) => v !== null && v !== undefined);
    if (!vals.length) return;
    const [lo, hi] = s.range || [0, Math.max(...vals)];
    const span = hi - lo || 1;
    const y = (v) => top + (1 - (Math.min(Math.max(v, lo), hi) - lo) / span) * (height - pad - top);
    const points = s.values.map((v, i) => (v === null || v === undefined ? null : `${x(i)},${y(v)}`)).filter(Boolean);
    root.append(svg("polyline", { points: points.join(" "), class: `line ${s.cls}` }));
    for (const p of points) {
      const [cx, cy] = p.split(",");
      root.append(svg("circle", { cx, cy, r: 3, class: `line ${s.cls}` }));
    }
    const t = svg("text", { x: pad + 4 + k * 150, y: 12 });
    t.textContent = `${s.name} (scale ${lo.toFixed(2)}–${hi.toFixed(2)})`;
    root.append(t);
  });
  return el("figure", {}, root, el("figcaption", { class: "legend", text: label }));
}
