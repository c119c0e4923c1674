// Hash router: #/overview, #/user/<id>, #/item/<id>, #/models, #/experiments.
import { api, errorBox, h } from "./lib.js";
import * as overview from "./pages/overview.js";
import * as user from "./pages/user.js";
import * as item from "./pages/item.js";
import * as models from "./pages/models.js";
import * as experiments from "./pages/experiments.js";

const PAGES = { overview, user, item, models, experiments };
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
    view.replaceChildren(errorBox(err));
  }
  view.dataset.ready = "true";
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
