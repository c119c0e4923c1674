// Experiments & evaluation: renders the JSON results files the service finds (A/B tests, OPE,
// simulator runs, offline evaluations, benchmarks); says so plainly when there is none yet.
import { api, fmt, h, pct, table, ts } from "../lib.js";
import { intervalPlot, legend, lineChart } from "../charts.js";

function ab(d) {
  const rows = d.comparisons || [];
  return [
    h("div", {}, `experiment ${d.experiment} · control ${d.control} · users `, Object.entries(d.users || {}).map(([v, n]) => h("span", { class: "chip" }, `${v}: ${fmt(n)}`)),
      d.srm ? h("span", { class: d.srm.mismatch ? "chip fb" : "chip ok" }, `SRM p=${fmt(d.srm.p_value)}`) : null),
    table([{ label: "metric", key: "metric" }, { label: "treatment", key: "treatment" },
      { label: "control mean", key: "mean_control", num: true }, { label: "treatment mean", key: "mean_treatment", num: true },
      { label: "diff", key: "diff", num: true }, { label: "95% CI", render: (r) => `[${fmt(r.ci_low)}, ${fmt(r.ci_high)}]` },
      { label: "relative", render: (r) => pct(r.relative_diff) }, { label: "p", key: "p_value", num: true },
      { label: "CUPED", render: (r) => (r.cuped ? `yes (−${pct(r.variance_reduction)} var)` : "no") }], rows),
    rows.length ? intervalPlot(rows.map((r) => ({ label: `${r.treatment}: ${r.metric}`, value: r.diff, lo: r.ci_low, hi: r.ci_high })), { ref: 0, refLabel: "no effect", width: 640 }) : null,
  ];
}

function ope(d) {
  const results = d.results || [d];
  return results.map((r) => {
    const est = Object.entries(r.estimators || {});
    return h("div", {},
      h("h3", {}, r.campaign ? `campaign ${r.campaign}` : (r.name || "estimates"),
        r.truth !== undefined ? h("span", { class: "muted" }, ` · on-policy truth ${fmt(r.truth)}`) : null),
      table([{ label: "estimator", key: "name" }, { label: "value", key: "value", num: true },
        { label: "CI", render: (x) => (x.ci ? `[${fmt(x.ci[0])}, ${fmt(x.ci[1])}]` : "–") },
        { label: "ESS", key: "ess", num: true }, { label: "rel. error", render: (x) => (x.relative_error === undefined ? "–" : pct(x.relative_error)) },
        { label: "truth in CI", render: (x) => (x.truth_in_ci === undefined ? "–" : String(x.truth_in_ci)) }],
        est.map(([name, x]) => ({ name, ...x }))),
      est.length ? intervalPlot(est.map(([name, x]) => ({ label: name, value: x.value, lo: x.ci ? x.ci[0] : NaN, hi: x.ci ? x.ci[1] : NaN })),
        { ref: Number.isFinite(r.truth) ? r.truth : null, refLabel: "truth", width: 640 }) : null);
  });
}

function simulator(d) {
  const runs = Object.entries(d.runs || {});
  const metrics = ["engagement", "coverage", "gini", "never_shown"].filter((m) => runs.some(([, r]) => r.rounds && r.rounds[0] && m in r.rounds[0]));
  const labels = runs.length ? runs[0][1].rounds.map((x) => String(x.round)) : [];
  return [
    d.summary ? table([{ label: "policy", key: "policy" }, ...Object.keys(Object.values(d.summary)[0] || {}).map((k) => ({ label: k, key: k, num: true }))],
      Object.entries(d.summary).map(([policy, s]) => ({ policy, ...s }))) : null,
    h("div", { class: "grid2" }, metrics.map((m) => h("div", {},
      lineChart(runs.map(([name, r]) => ({ name, values: r.rounds.map((x) => x[m]) })), labels, { title: `${m} per round`, width: 460 })))),
    legend(runs.map(([name]) => name)),
  ];
}

function evaluation(d) {
  const keys = [...new Set((d.summary || []).flatMap((r) => Object.keys(r)))].filter((k) => /@/.test(k) && !k.endsWith("_std"));
  return [h("div", { class: "muted" }, `${d.dataset} · ${d.protocol} · top-${d.k}`),
    table([{ label: "model", key: "model" }, ...keys.map((k) => ({ label: k, num: true, render: (r) => fmt(r[k]) }))], d.summary || [])];
}

function generic(d) {
  const scalars = Object.entries(d || {}).filter(([, v]) => v === null || typeof v !== "object");
  return [scalars.length ? table([{ label: "field", key: "k" }, { label: "value", render: (r) => fmt(r.v) }], scalars.map(([k, v]) => ({ k, v }))) : null];
}

function safe(fn, data) {
  try {
    return fn(data);
  } catch (err) {
    return h("div", { class: "error" }, `could not render this file as expected (${err.message}); see the raw JSON`);
  }
}

const RENDER = { ab, ope, simulator, evaluation, benchmark: generic, other: generic };
const TITLE = { ab: "A/B test", ope: "Off-policy evaluation", simulator: "Simulator run", evaluation: "Offline evaluation", benchmark: "Benchmark", other: "Results" };
const ORDER = ["ab", "ope", "simulator", "evaluation", "benchmark", "other", "too_large", "invalid"];

export async function render(root) {
  const d = await api("/ui/api/experiments");
  root.replaceChildren(h("h1", {}, "Experiments & evaluation"),
    h("div", { class: "muted" }, "Results files read from: ", d.searched.map((p) => h("code", {}, p, " "))));
  const kinds = new Set(d.files.map((f) => f.kind));
  for (const [kind, what] of [["ab", "A/B test results"], ["ope", "off-policy evaluation (OPE) results"], ["simulator", "simulator runs"]]) {
    if (!kinds.has(kind)) root.append(h("div", { class: "empty", dataset: { missing: kind } }, `No ${what} yet.`));
  }
  if (!d.files.length) {
    root.append(h("div", { class: "panel empty", id: "no-results" },
      "Nothing to show yet: no JSON results file was found. `winnow evaluate --json FILE`, the benchmarks (bench/results/) and the experiment, OPE and simulator tools write them."));
    return;
  }
  const files = [...d.files].sort((a, b) => ORDER.indexOf(a.kind) - ORDER.indexOf(b.kind));
  for (const f of files) {
    const render = RENDER[f.kind];
    root.append(h("div", { class: "panel", dataset: { kind: f.kind, file: f.name } },
      h("h2", {}, `${TITLE[f.kind] || f.kind}: `, h("code", {}, f.name)),
      h("div", { class: "muted" }, `${f.dir} · modified ${ts(f.modified)} · ${fmt(f.bytes)} bytes`),
      f.error ? h("div", { class: "error" }, f.error) : null,
      render && f.data ? safe(render, f.data) : null,
      f.data ? h("details", {}, h("summary", {}, "raw JSON"), h("pre", {}, JSON.stringify(f.data, null, 2).slice(0, 20000))) : null));
  }
}
