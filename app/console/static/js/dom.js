// Small DOM helpers: elements are built with textContent (never innerHTML), so API text is never markup.

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(node.dataset, v);
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) if (c !== null && c !== undefined) node.append(c instanceof Node ? c : String(c));
  return node;
}

export const $ = (id) => document.getElementById(id);

export function fill(node, ...children) {
  node.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined));
  return node;
}

export function showError(node, err) {
  if (!err) { node.hidden = true; node.textContent = ""; return; }
  node.hidden = false;
  node.textContent = err.status ? `${err.detail} (HTTP ${err.status})` : String(err.detail || err.message || err);
}

export const num = (x, digits = 3) => (x === null || x === undefined ? "—" : Number(x).toFixed(digits));
export const pct = (x, digits = 1) => (x === null || x === undefined ? "—" : `${(100 * x).toFixed(digits)} %`);

export function kv(node, pairs) {
  fill(node, pairs.filter(([, v]) => v !== undefined).flatMap(([k, v]) => [el("dt", { text: k }), el("dd", { text: v ?? "—" })]));
}

export function table(columns, rows) {
  return el("table", {},
    el("thead", {}, el("tr", {}, columns.map((c) => el("th", { scope: "col", text: c })))),
    el("tbody", {}, rows.map((cells) => el("tr", {}, cells.map((c) => (c instanceof Node && c.tagName === "TD" ? c : el("td", {}, c)))))));
}

export function badge(text, kind = text) {
  return el("span", { class: `badge ${kind}`, text });
}

export function download(blob, filename) {
  const href = URL.createObjectURL(blob);
  const a = el("a", { href, download: filename });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(href), 60_000);
}

/** Whether the key in use may take admin actions (set by main.js from GET /whoami). */
export const isAdmin = () => document.body.dataset.role === "admin";
