// Drift: the service's live window vs the serving bundle's reference profile (GET /v1/admin/drift,
// computed by the drift monitor process, the same report as `winnow drift report`): data drift and
// concept drift apart, one row per statistic with a sparkline of its recent history; the ranker's
// features (recomputed by the monitor on served slates) in a table of their own, drifted first.
import { api, errorBox, fill, fmt, h, table, ts } from "../lib.js";

const NS = "http://www.w3.org/2000/svg";

// a small line of the values (oldest first) with the threshold as a dashed line
function sparkline(values, threshold, { width = 140, height = 28 } = {}) {
  const svg = document.createElementNS(NS, "svg");
  for (const [k, v] of Object.entries({ class: "sparkline", width, height, viewBox: `0 0 ${width} ${height}`, role: "img" })) svg.setAttribute(k, v);
  const finite = values.filter((v) => Number.isFinite(v));
  svg.dataset.points = String(finite.length);
  if (!finite.length) return svg;
  const top = Math.max(threshold, ...finite) * 1.1 || 1;
  const x = (i) => (values.length === 1 ? width / 2 : (i * (width - 4)) / (values.length - 1) + 2);
  const y = (v) => height - 2 - ((height - 4) * v) / top;
  const add = (tag, attrs) => { const el = document.createElementNS(NS, tag); for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v)); svg.append(el); };
  add("line", { x1: 0, x2: width, y1: y(threshold), y2: y(threshold), stroke: "#e4572e", "stroke-dasharray": "3,3", "stroke-width": 1 });
  const pts = values.map((v, i) => (Number.isFinite(v) ? `${x(i).toFixed(1)},${y(v).toFixed(1)}` : null)).filter(Boolean);
  if (pts.length > 1) add("polyline", { points: pts.join(" "), fill: "none", stroke: "#2f6fde", "stroke-width": 1.5 });
  const [lx, ly] = pts[pts.length - 1].split(",");
  add("circle", { cx: lx, cy: ly, r: 2.2, fill: "#2f6fde" });
  return svg;
}

function flag(kind, on) {
  return h("span", { class: `chip ${on ? "fb" : "ok"}`, id: `flag-${kind}` }, `${kind} drift: ${on ? "YES" : "no"}`);
}

function rowsTable(kind, rows, history, empty) {
  const series = (r) => history.map((p) => p.values[`${kind}:${r.name}:${r.statistic}`] ?? NaN);
  return table([
    { label: "feature", render: (r) => h("span", { class: "mono" }, r.name) },
    { label: "statistic", key: "statistic" },
    { label: "value", num: true, render: (r) => fmt(r.value, 4) },
    { label: "threshold", num: true, render: (r) => fmt(r.threshold) },
    { label: "verdict", render: (r) => h("span", { class: `chip ${r.drifted ? "fb" : "ok"}` }, r.drifted ? "DRIFT" : "ok") },
    { label: `history (last ${history.length})`, render: (r) => sparkline(series(r), r.threshold) },
  ], rows, { empty: empty || "no statistic of this kind could be compared (see the notes)" });
}

// 1 when any statistic of this row's feature drifted (its rows sort first), else 0
function byFeature(row, rows) {
  return rows.some((r) => r.name === row.name && r.drifted) ? 1 : 0;
}

// how many features (not statistics): moved ones only when ``drifted``
function featureCount(rows, drifted) {
  return new Set(rows.filter((r) => !drifted || r.drifted).map((r) => r.name)).size;
}

export async function render(root, _arg, { refresh = false } = {}) {
  const d = refresh ? await api("/v1/admin/drift/refresh", { method: "POST" }) : await api("/v1/admin/drift");
  const button = h("button", { type: "button", id: "drift-refresh", onclick: async () => {
    button.disabled = true;
    try { await render(root, _arg, { refresh: true }); } catch (err) { root.append(errorBox(err)); }
  } }, "Recompute now");
  const head = [h("h1", {}, "Drift"),
    h("div", { class: "toolbar" }, button,
      h("span", { class: "muted", id: "drift-state" }, `monitor ${d.state}`, d.computed_at ? ` · computed ${ts(d.computed_at)}` : "",
        ` · every ${fmt(d.refresh_s)} s over the last ${fmt(d.window_days)} days · ${d.refreshes} refreshes`))];
  const rep = d.report;
  if (!rep) {
    fill(root, head, h("div", { class: "panel empty", id: "drift-empty" }, d.error || "no comparison yet: the monitor computes its first one shortly after start-up"));
    return;
  }
  // the ranker's features (rows of group "ranker_feature", one per feature and statistic) get a table of their own
  const inputs = rep.data.filter((r) => r.group !== "ranker_feature");
  const features = rep.data.filter((r) => r.group === "ranker_feature")
    .sort((a, b) => (byFeature(b, rep.data) - byFeature(a, rep.data)) || a.name.localeCompare(b.name) || a.statistic.localeCompare(b.statistic));
  fill(root, head,
    h("div", { class: "panel" },
      h("div", {}, "bundle ", h("b", { class: "mono", id: "drift-bundle" }, rep.bundle),
        ` · reference ${ts(rep.reference.window[0])} – ${ts(rep.reference.window[1])} (${fmt(rep.reference.events)} events)`,
        ` · live ${ts(rep.live.window[0])} – ${ts(rep.live.window[1])} (${fmt(rep.live.events)} events)`),
      h("div", {}, flag("data", rep.data_drift), flag("concept", rep.concept_drift)),
      d.error ? errorBox(`last refresh failed, showing the previous result: ${d.error}`) : null),
    h("div", { class: "panel", id: "drift-data" }, h("h2", {}, "Data drift: the inputs moved"), rowsTable("data", inputs, d.history)),
    features.length ? h("div", { class: "panel", id: "drift-features" },
      h("h2", {}, `Data drift in the ranker's features: ${featureCount(features, true)} of ${featureCount(features, false)} moved`),
      h("p", { class: "muted" }, "each feature on a sample of the slates this bundle served, recomputed point-in-time by the monitor, vs the ranker's training rows; drifted first"),
      rowsTable("data", features, d.history)) : null,
    h("div", { class: "panel", id: "drift-concept" }, h("h2", {}, "Concept drift: the relation moved"), rowsTable("concept", rep.concept, d.history, rep.concept_note)),
    rep.notes && rep.notes.length ? h("div", { class: "panel", id: "drift-notes" }, h("h2", {}, "Not compared"),
      h("ul", {}, rep.notes.map((n) => h("li", {}, n)))) : null);
}
