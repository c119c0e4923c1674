// Models: bundle versions with their offline metrics; activate or roll back through the admin API.
// The API key saved in this browser (admin scope) goes with every call as a Bearer token.
import { api, errorBox, fill, fmt, getKey, h, setKey, table, ts } from "../lib.js";
import { barChart, legend } from "../charts.js";


function modelMetrics(metrics) {
  // manifest "metrics": {k, protocol, cutoff, ..., <model>: {"recall@20": ...}}
  return Object.entries(metrics || {}).filter(([, v]) => v && typeof v === "object" && !Array.isArray(v));
}

function metricsTable(metrics) {
  const rows = modelMetrics(metrics);
  if (!rows.length) return h("span", { class: "muted" }, "no offline metrics");
  const keys = [...new Set(rows.flatMap(([, m]) => Object.keys(m)))].filter((k) => /^(recall|ndcg|precision|coverage|hit_rate|map)@/.test(k));
  return table([{ label: "model", key: "model" }, ...keys.map((k) => ({ label: k, num: true, render: (r) => fmt(r[k]) }))],
    rows.map(([model, m]) => ({ model, ...m })));
}

export async function render(root) {
  const status = h("div", { id: "models-status", role: "status" });
  const tokenInput = h("input", { type: "password", id: "admin-token", placeholder: "wn_… (admin scope)", value: getKey() });
  const tokenForm = h("form", { class: "toolbar", onsubmit: (e) => {
    e.preventDefault();
    setKey(tokenInput.value);
    status.replaceChildren(h("span", { class: "chip ok" }, tokenInput.value ? "API key saved in this browser" : "API key cleared"));
  } }, h("label", {}, "API key ", tokenInput), h("button", { type: "submit" }, "save"),
    h("span", { class: "muted" }, "sent as a Bearer token; activate / roll back need the admin scope"));
  const body = h("div", {});
  root.replaceChildren(h("h1", {}, "Models"), tokenForm, status, body);

  async function act(label, path) {
    status.replaceChildren(h("span", { class: "muted" }, `${label}…`));
    for (const b of root.querySelectorAll("button[data-action]")) b.disabled = true;
    try {
      const r = await api(path, { method: "POST" });
      status.replaceChildren(h("span", { class: "chip ok", id: "action-result" },
        `${label}: now serving ${r.serving} (was ${r.previous}); loaded in ${fmt(r.load_seconds)} s`));
    } catch (err) {
      const hint = err.status === 401 || err.status === 403 ? " — set an API key with the admin scope above" : "";
      status.replaceChildren(errorBox(`${label} failed: ${err.message}${hint}`));
    }
    await load();
  }

  async function load() {
    const d = await api("/v1/admin/bundles");
    const bundles = [...d.bundles].sort((a, b) => (b.created_at || 0) - (a.created_at || 0));
    const models = [...new Set(bundles.flatMap((b) => modelMetrics(b.metrics).map(([m]) => m)))];
    const recallKey = (m) => Object.keys(m || {}).find((k) => k.startsWith("recall@"));
    const chartVersions = bundles.slice(0, 8).reverse();
    fill(body,
      h("div", { class: "toolbar" },
        h("span", {}, "serving ", h("b", { class: "mono", id: "serving-version" }, d.serving || "none"), " · ACTIVE ", h("span", { class: "mono" }, d.active || "none")),
        h("button", { type: "button", id: "rollback", dataset: { action: "rollback" }, disabled: bundles.length < 2,
          onclick: () => act("roll back", "/v1/admin/bundles/rollback") }, "Roll back to the previous bundle")),
      bundles.length ? null : h("div", { class: "empty" }, "No bundle yet: run `winnow train`."),
      models.length && chartVersions.length ? h("div", { class: "panel" }, h("h2", {}, "Offline recall per bundle (temporal hold-out)"),
        barChart(chartVersions.map((b) => b.version.slice(0, 16)), models.map((m) => ({ name: m,
          values: chartVersions.map((b) => { const mm = b.metrics[m]; const k = recallKey(mm); return k ? mm[k] : NaN; }) })), { width: 700 }),
        legend(models)) : null,
      h("div", { class: "panel" }, table([
        { label: "version", render: (b) => h("span", { class: "mono", dataset: { version: b.version } }, b.version) },
        { label: "state", render: (b) => h("span", {}, b.serving ? h("span", { class: "badge serving" }, "serving") : null, " ", b.active ? h("span", { class: "badge active" }, "active") : null) },
        { label: "created (UTC)", render: (b) => ts(b.created_at) },
        { label: "data", render: (b) => `${fmt(b.data.events)} events · ${fmt(b.data.users)} users · ${fmt(b.data.items)} items` },
        { label: "offline metrics", render: (b) => metricsTable(b.metrics) },
        { label: "", render: (b) => h("button", { type: "button", class: "primary", dataset: { action: "activate", version: b.version }, disabled: b.serving,
          onclick: () => act(`activate ${b.version}`, `/v1/admin/bundles/${encodeURIComponent(b.version)}/activate`) }, "Activate") },
      ], bundles, { empty: "no bundle" })));
  }
  await load(); // a 401/403 here goes to the router, which asks for a key
}
