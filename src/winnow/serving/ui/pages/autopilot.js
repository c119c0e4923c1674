// Autopilot: the recent cycles of `winnow autopilot` (GET /v1/admin/autopilot, read from the cycle
// records; the same data as `winnow autopilot status`): per cycle its trigger and attempts, the
// stages with timings and peak RSS, the gate's verdict with its reasons, and the hand-off.
import { api, fill, fmt, h, table, ts } from "../lib.js";

const STATUS_CHIP = { done: "ok", failed: "fb", abandoned: "fb", running: "rule" };

function chip(text, kind) {
  return h("span", { class: `chip ${kind}` }, text);
}

function stagesTable(c) {
  return table([
    { label: "stage", render: (s) => h("span", { class: "mono" }, s.name) },
    { label: "status", render: (s) => chip(s.status, s.status === "done" ? "ok" : "fb") },
    { label: "wall s", num: true, render: (s) => fmt(s.wall_s) },
    { label: "CPU s", num: true, render: (s) => fmt(s.cpu_s) },
    { label: "peak RSS MiB", num: true, render: (s) => fmt(s.peak_rss_mib) },
    { label: "runs (skipped)", num: true, render: (s) => `${s.runs} (${s.skipped_runs})` },
    { label: "outputs", render: (s) => s.summary || "–" },
  ], c.stages, { empty: "no stage has completed yet" });
}

function gatePanel(gate) {
  if (!gate) return h("div", { class: "muted gate" }, "gate: not reached");
  const metric = (who) => {
    const m = gate.metrics[who];
    return m ? h("li", {}, `${who} ndcg ${fmt(m.ndcg, 4)} · recall ${fmt(m.recall, 4)} · coverage ${fmt(m.coverage, 4)} (${fmt(m.users)} users)`) : null;
  };
  const ope = gate.ope || {};
  return h("div", { class: "gate" },
    h("div", {}, h("span", { class: `chip ${gate.passed ? "ok" : "fb"} gate-verdict` }, gate.passed ? "gate PASSED" : "gate FAILED"),
      " challenger ", h("b", { class: "mono" }, gate.challenger), " vs champion ", h("b", { class: "mono" }, gate.champion || "none")),
    h("ul", {}, metric("challenger"), metric("champion"),
      gate.champion_saw_holdout ? h("li", {}, "change checks not applied: the champion trained on the holdout window") : null,
      ...gate.reasons.map((r) => h("li", { class: "gate-reason" }, `failed: ${r}`)),
      h("li", {}, ope.status === "estimated"
        ? `SNIPS clicks/slate ${fmt(ope.value, 4)} [${fmt(ope.ci[0], 4)}, ${fmt(ope.ci[1], 4)}] (logged ${fmt(ope.logged_value, 4)})`
        : `off-policy: ${ope.status || "–"}${ope.why ? `: ${ope.why}` : ""}`)));
}

function cyclePanel(c) {
  const handoff = c.handoff;
  return h("div", { class: "panel cycle", "data-cycle": c.cycle },
    h("h2", {}, h("span", { class: "mono" }, c.cycle), " ", chip(c.status.toUpperCase(), STATUS_CHIP[c.status] || "rule")),
    h("div", { class: "muted" }, `started ${ts(c.started_at)}`, c.finished_at ? ` · finished ${ts(c.finished_at)}` : "",
      ` · trigger: ${c.trigger || "–"} · attempts ${c.attempts}`),
    c.reason ? h("div", { class: "error cycle-reason" }, c.reason) : null,
    stagesTable(c),
    gatePanel(c.gate),
    handoff ? h("div", { class: "handoff" }, "hand-off: ", h("b", {}, handoff.action),
      ` · ACTIVE ${handoff.active_before || "none"} → ${handoff.active_after || "none"}`) : null);
}

export async function render(root) {
  const d = await api("/v1/admin/autopilot?last=20");
  const head = [h("h1", {}, "Autopilot"),
    h("div", { class: "muted", id: "autopilot-count" }, `${d.cycles.length} of ${d.total} cycles, newest first`)];
  if (!d.cycles.length) {
    fill(root, head, h("div", { class: "panel empty", id: "autopilot-empty" },
      "no autopilot cycle has run yet (winnow autopilot --once runs one)"));
    return;
  }
  fill(root, head, [...d.cycles].reverse().map(cyclePanel));
}
