// Hash router: #/overview, #/user/<id>, #/item/<id>, #/models, #/rollout, #/experiments, #/drift, #/autopilot.
import { api, errorBox, getKey, h, setKey } from "./lib.js";
import * as overview from "./pages/overview.js";
import * as user from "./pages/user.js";
import * as item from "./pages/item.js";
import * as models from "./pages/models.js";
import * as rollout from "./pages/rollout.js";
import * as experiments from "./pages/experiments.js";
import * as drift from "./pages/drift.js";
import * as autopilot from "./pages/autopilot.js";

const PAGES = { overview, user, item, models, rollout, experiments, drift, autopilot };
const view = document.getElementById("view");
let current = null;

async function route() {
  const [, name = "overview", ...rest] = (location.hash || "#/overview").split("/");
  const page = PAGES[name] || overview;
  const arg = rest.length ? decodeURIComponent(rest.join("/")) : "";
  if (current && current.leave) current.leave();
  current = page;
  for (const a of document.querySelectorAll("#nav a")) a.classList.toggle("active", a.dataset.page === name);
  view.replaceChildren(h("div", { class: "muted" }, "loading…"));
  view.dataset.page = name;
  view.dataset.ready = "false";
  try {
    await page.render(view, arg);
  } catch (err) {
    view.replaceChildren(err.status === 401 || err.status === 403 ? signIn(err) : errorBox(err));
  }
  view.dataset.ready = "true";
}

// The JSON API needs an API key with the admin scope (`winnow keys create --scope admin`).
function signIn(err) {
  const input = h("input", { type: "password", id: "api-key", placeholder: "wn_…", autocomplete: "off", size: 50 });
  return h("div", { class: "panel", id: "sign-in" },
    h("h1", {}, "An API key is needed"),
    errorBox(err),
    h("p", {}, "The dashboard reads the service through its admin API. Create a key with ",
      h("code", {}, "winnow keys create --scope admin"), " and paste it here; it is kept in this browser only (localStorage)."),
    h("form", { class: "toolbar", onsubmit: (e) => { e.preventDefault(); setKey(input.value); route(); } },
      h("label", {}, "API key ", input), h("button", { type: "submit", class: "primary" }, "Use this key"),
      getKey() ? h("button", { type: "button", onclick: () => { setKey(""); route(); } }, "forget the saved key") : null));
}

async function header() {
  try {
    const r = await api("/readyz");
    document.getElementById("serving").textContent = `serving ${r.model_version || "no bundle"} (${r.mode})`;
  } catch (err) {
    document.getElementById("serving").textContent = `service not ready: ${err.message}`;
  }
}

window.addEventListener("hashchange", route);
header();
route();
