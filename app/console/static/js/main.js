// The console's entry: the API key (sessionStorage only), the role it has (GET /whoami), and the views.
import { apiKey, getJSON } from "./api.js";
import { $, showError } from "./dom.js";
import { initModels, loadModels } from "./models.js";
import { initMonitoring, loadMonitoring } from "./monitoring.js";
import { initPacs, loadPacs } from "./pacs.js";
import { initScreen } from "./screen.js";
import { initTraining, loadTraining } from "./training.js";

const VIEWS = { screen: null, models: loadModels, training: loadTraining, pacs: loadPacs, monitoring: loadMonitoring };
const ADMIN_VIEWS = new Set(["training", "monitoring"]);

function currentView() {
  const name = location.hash.replace("#", "");
  if (!(name in VIEWS)) return "screen";
  return ADMIN_VIEWS.has(name) && document.body.dataset.role !== "admin" ? "screen" : name;
}

function show() {
  const name = currentView();
  for (const view of Object.keys(VIEWS)) $(`view-${view}`).hidden = view !== name;
  for (const a of document.querySelectorAll("nav a")) {
    if (a.dataset.view === name) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  document.title = `${document.querySelector(`#view-${name} h2`).textContent} — CXR screening console`;
  const load = VIEWS[name];
  if (load && (apiKey.get() || document.body.dataset.auth === "off")) load();
}

async function identify() {
  const state = $("key-state");
  try {
    const who = await getJSON("whoami");
    document.body.dataset.role = who.role;
    document.body.dataset.auth = who.auth ? "on" : "off";
    state.textContent = who.auth ? `${who.role} key ${who.key_id}` : "API keys are off on this server";
  } catch (err) {
    delete document.body.dataset.role;
    state.textContent = apiKey.get() ? `key refused: ${err.detail}` : "no key: enter an API key";
  }
  show();
}

function initKey() {
  const form = $("key-form");
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const input = $("api-key");
    apiKey.set(input.value.trim());
    input.value = "";
    identify();
  });
  $("key-forget").addEventListener("click", () => { apiKey.clear(); identify(); });
}

initKey();
initScreen();
initModels();
initTraining();
initPacs();
initMonitoring();
window.addEventListener("hashchange", () => { show(); $("main").focus(); });
showError($("screen-error"), null);
identify();
