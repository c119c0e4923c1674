// Rollout: the running (else latest) rollout from GET /v1/admin/rollout (polled): state, arms and
// their shares, metrics with the always-valid interval, guardrails, SRM, coverage, a shadow's
// comparison, and every decision with the rule that fired and its evidence. Promote / abort go
// through the admin API (the saved key needs the admin scope). docs/ROLLOUT.md.
import { api, errorBox, fill, fmt, h, pct, table, ts } from "../lib.js";
import { intervalPlot } from "../charts.js";

const POLL_MS = 3000;
let timer = null;

export function leave() {
  if (timer) clearInterval(timer);
  timer = null;
}

function stateBadge(r) {
  const cls = r.running ? "serving" : r.state === "promoted" ? "active" : "ended";
  return h("span", { class: `badge ${cls}`, id: "rollout-state" }, r.state);
}

// One line saying why a decision was taken, from its rule and evidence.
export function why(d) {
  const e = d.evidence || {};
  const t = e.test;
  const parts = [];
  if (d.action === "start") parts.push(`started by ${e.by || "?"} (${e.mode || ""}${e.plan ? `, plan ${e.plan.join(",")}` : ""})`);
  if (e.by && d.action !== "start") parts.push(`by ${e.by}`);
  if (e.breaches) parts.push(`guardrail breached: ${e.breaches.join(", ")}`);
  for (const b of e.breaches || []) {
    const rt = (e.rate_tests || {})[b];
    if (rt) parts.push(`${b} increase ${fmt(rt.diff)}, always-valid interval [${fmt(rt.low)}, ${fmt(rt.high)}] above the allowed ${fmt(rt.limit)}`);
  }
  if (d.rule === "srm" && e.srm) parts.push(`assignment ${e.srm.observed.join(" / ")} vs expected ${e.srm.expected.map((v) => fmt(v)).join(" / ")}, always-valid p ${fmt(e.srm.p_value)}`);
  if (e.breaches && e.breaches.includes("coverage") && e.coverage) parts.push(`distinct items ${e.coverage.challenger_items} vs ${e.coverage.champion_items} at ${e.coverage.requests} requests`);
  if (t && (d.rule.startsWith("sequential") || d.rule.startsWith("step_complete"))) {
    parts.push(`challenger − champion ${fmt(t.diff)}, interval [${fmt(t.low)}, ${fmt(t.high)}]`);
    if (e.non_inferiority_bound !== undefined && e.non_inferiority_bound !== null) parts.push(`bound ${fmt(e.non_inferiority_bound)}`);
  }
  if (d.rule === "step_timeout") parts.push(`still waiting (${e.waiting || "?"}) ${fmt(e.max_step_s)} s after the step began`);
  if (e.error) parts.push(`error: ${e.error}`);
  if (e.errors) parts.push(`${e.attempts || e.errors.length} failed builds, last: ${e.errors[e.errors.length - 1]}`);
  return parts.join("; ") || d.rule;
}

function armsPanel(r, now) {
  const ev = (now && now.evidence) || {};
  const arms = ev.arms || {};
  const shares = { champion: 1 - r.share, challenger: r.share };
  const rows = ["champion", "challenger"].map((arm) => ({ arm, share: shares[arm], ...(arms[arm] || {}) }));
  const t = ev.test;
  const srm = ev.srm;
  const cov = ev.coverage;
  return h("div", { class: "panel", id: "rollout-arms" },
    h("h2", {}, "Arms"),
    table([
      { label: "arm", key: "arm" },
      { label: "share of users", num: true, render: (a) => pct(a.share) },
      { label: "requests", key: "requests", num: true },
      { label: "exposed users", key: "exposed_users", num: true },
      { label: "metric (per user)", num: true, render: (a) => fmt(a.metric_mean, 4) },
      { label: "error rate", num: true, render: (a) => pct(a.error_rate) },
      { label: "empty slates", num: true, render: (a) => pct(a.empty_rate) },
      { label: "fallbacks", num: true, render: (a) => pct(a.fallback_rate) },
      { label: "p99 ms", num: true, render: (a) => fmt(a.p99_ms) },
      { label: "distinct items", key: "distinct_items", num: true },
    ], rows),
    t ? h("div", { id: "rollout-interval" },
      h("h3", {}, `challenger − champion (${r.params.metric || "ctr"}): always-valid ${pct(1 - t.alpha)} interval, p ${fmt(t.p_value)}`),
      intervalPlot([{ label: "challenger − champion", value: t.diff, lo: t.low, hi: t.high },
        ...(ev.non_inferiority_bound !== undefined && ev.non_inferiority_bound !== null
          ? [{ label: "non-inferiority bound", value: ev.non_inferiority_bound, lo: NaN, hi: NaN }] : [])],
      { width: 640, ref: 0, refLabel: "0" }))
      : h("div", { class: "empty" }, "no interval yet: too few users with a metric in an arm"),
    h("div", { class: "toolbar" },
      h("span", {}, "SRM: ", srm ? `observed ${srm.observed.join(" / ")}, expected ${srm.expected.map((v) => fmt(v)).join(" / ")}, always-valid p ${fmt(srm.p_value)}` : "not judged yet"),
      h("span", {}, "coverage: ", cov ? `${cov.challenger_items} vs ${cov.champion_items} distinct items at ${fmt(cov.requests)} requests (ratio ${fmt(cov.ratio)})` : "–")),
    h("div", { class: "toolbar", id: "rollout-rate-tests" },
      ...Object.entries(ev.rate_tests || {}).map(([rate, rt]) => h("span", { class: rt.breach ? "chip rule" : "" },
        `${rate}: increase ${fmt(rt.diff)} [${fmt(rt.low)}, ${fmt(rt.high)}], allowed ${fmt(rt.limit)}`))),
    now && now.due ? h("div", { class: "chip rule", id: "rollout-due" }, `due now: ${now.due.action} (${now.due.rule})`)
      : ev.waiting && r.running ? h("div", { class: "muted", id: "rollout-waiting" }, `waiting: ${ev.waiting}`) : null);
}

function shadowPanel(s) {
  s = s || {};
  const card = (label, v, id) => h("div", { class: "card", id }, h("div", { class: "v" }, v), h("div", { class: "l" }, label));
  const stages = Object.entries(s.challenger_ms || {}).map(([stage, v]) => ({ stage, ...v }));
  return h("div", { class: "panel", id: "rollout-shadow" },
    h("h2", {}, "Shadow: the challenger's slates against the champion's"),
    h("div", { class: "cards" },
      card("shadowed requests", fmt(s.requests ?? 0), "shadow-requests"), card("errors", fmt(s.errors ?? 0)),
      card("overlap@k", fmt(s.overlap)), card("rank-biased overlap", fmt(s.rbo)),
      card("only the champion", pct(s.only_champion)), card("only the challenger", pct(s.only_challenger)),
      card("champion score mean", fmt((s.champion_scores || {}).mean)), card("challenger score mean", fmt((s.challenger_scores || {}).mean))),
    h("h3", {}, "challenger latency per stage"),
    table([{ label: "stage", key: "stage" }, { label: "p50 ms", key: "p50", num: true }, { label: "p99 ms", key: "p99", num: true }],
      stages, { empty: "no shadowed request yet" }));
}

function decisionsPanel(r) {
  const rows = [...r.decisions].reverse();
  return h("div", { class: "panel", id: "rollout-decisions" },
    h("h2", {}, `Decisions (${r.decisions.length})`),
    table([
      { label: "time (UTC)", render: (d) => ts(d.at) },
      { label: "step", render: (d) => r.plan.length ? `${d.step + 1}/${r.plan.length} (${r.plan[d.step]}%)` : "–" },
      { label: "action", render: (d) => h("b", { dataset: { action: d.action } }, d.action) },
      { label: "rule", render: (d) => h("code", {}, d.rule) },
      { label: "why", render: (d) => h("span", { class: "why" }, why(d)) },
      { label: "evidence", render: (d) => h("details", {}, h("summary", {}, "all"), h("pre", {}, JSON.stringify(d.evidence, null, 1))) },
    ], rows));
}

export async function render(root) {
  leave();
  const status = h("div", { id: "rollout-status", role: "status" });
  const body = h("div", {});
  root.replaceChildren(h("h1", {}, "Rollout"), status, body);

  async function act(label, path) {
    status.replaceChildren(h("span", { class: "muted" }, `${label}…`));
    for (const b of root.querySelectorAll("button[data-action]")) b.disabled = true;
    try {
      const d = await api(path, { method: "POST" });
      status.replaceChildren(h("span", { class: "chip ok", id: "rollout-action-result" }, `${label}: rollout ${d.rollout.id} is ${d.rollout.state}`));
    } catch (err) {
      status.replaceChildren(errorBox(`${label} failed: ${err.message}`));
    }
    await draw();
  }

  async function draw() {
    let d;
    try {
      d = await api("/v1/admin/rollout");
    } catch (err) {
      if (err.status !== 404) throw err;
      fill(body, h("div", { class: "empty", id: "rollout-none" },
        "No rollout yet. Start one with `winnow rollout shadow BUNDLE` or `winnow rollout canary BUNDLE` (or POST /v1/admin/rollout/...)."));
      return;
    }
    const r = d.rollout;
    const here = d.here || {};
    const step = r.plan.length ? `step ${r.step + 1} of ${r.plan.length} (plan ${r.plan.join(", ")}%)` : "";
    fill(body,
      h("div", { class: "panel", id: "rollout-summary", dataset: { rolloutId: String(r.id), state: r.state } },
        h("div", { class: "toolbar" },
          h("b", {}, `rollout ${r.id}`), stateBadge(r), h("span", {}, `${r.mode} of `, h("b", { class: "mono", id: "rollout-challenger" }, r.challenger),
            " against ", h("span", { class: "mono" }, r.champion || "–")),
          r.mode === "canary" ? h("span", { id: "rollout-share" }, `challenger share ${pct(r.share)} · ${step}`) : h("span", {}, `sample ${pct(r.params.sample)}`),
          h("span", { class: "muted" }, `started ${ts(r.started)}${r.ended ? ` · ended ${ts(r.ended)}` : ""}`)),
        h("div", { class: "toolbar" },
          h("span", { class: "muted" }, here.challenger_loaded ? `this server holds ${here.challenger_loaded}` : r.running ? "this server is building the challenger" : ""),
          (here.build_failures || []).length ? h("span", { class: "chip fb" }, `${here.build_failures.length} failed builds here`) : null,
          r.running ? h("button", { type: "button", class: "primary", id: "rollout-promote", dataset: { action: "promote" },
            onclick: () => act("promote", "/v1/admin/rollout/promote") }, "Promote the challenger") : null,
          r.running ? h("button", { type: "button", id: "rollout-abort", dataset: { action: "abort" },
            onclick: () => act("abort", "/v1/admin/rollout/abort") }, "Abort") : null)),
      r.mode === "canary" ? armsPanel(r, d.now) : shadowPanel(d.shadow),
      decisionsPanel(r));
  }

  await draw(); // a 401/403 here goes to the router, which asks for a key
  timer = setInterval(async () => {
    const mine = timer;
    if (root.querySelector("details[open]")) return; // do not close what the reader opened
    try {
      await draw();
    } catch (err) {
      if (timer === mine) fill(body, errorBox(err));
    }
  }, POLL_MS);
}
