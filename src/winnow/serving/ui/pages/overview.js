// Overview: catalog/users/events counts and live service health from /ui/api/stats (polled).
import { api, errorBox, fmt, h, pct, table } from "../lib.js";
import { legend, lineChart } from "../charts.js";

const POLL_MS = 2000;
const HISTORY = 60;
const NOT_API = /^\/(ui|metrics|healthz|readyz|docs|openapi|redoc)|^unmatched$/;
let timer = null;
let prev = null;
let history = [];

export function leave() {
  if (timer) clearInterval(timer);
  timer = null;
}

function counter(m, name) {
  return (m.counters[name] || []);
}

function sumBy(samples, pred = () => true) {
  return samples.filter((s) => pred(s.labels)).reduce((a, s) => a + s.value, 0);
}

// quantile q of a (cumulative, Prometheus-style) bucket list [[le, count], ...]
function quantile(buckets, q) {
  const total = buckets.length ? buckets[buckets.length - 1][1] : 0;
  if (!(total > 0)) return null;
  const target = q * total;
  let prevLe = 0, prevC = 0;
  for (const [le, c] of buckets) {
    if (c >= target) {
      if (le === null) return prevLe;
      return prevLe + ((le - prevLe) * (target - prevC)) / Math.max(c - prevC, 1e-12);
    }
    prevLe = le ?? prevLe; prevC = c;
  }
  return prevLe;
}

function diffHist(a, b) {
  // b - a for one histogram series (a may be undefined: since start)
  if (!a) return b;
  return { count: b.count - a.count, sum: b.sum - a.sum,
           buckets: b.buckets.map(([le, c], i) => [le, c - (a.buckets[i] ? a.buckets[i][1] : 0)]) };
}

function stageTable(cur, old) {
  const hists = cur.metrics.histograms.winnow_stage_seconds || [];
  const before = old ? (old.metrics.histograms.winnow_stage_seconds || []) : [];
  const rows = hists.map((s) => {
    const b = before.find((x) => x.labels.stage === s.labels.stage);
    let d = diffHist(b, s);
    let window = "last poll";
    if (!(d.count > 0)) { d = s; window = "since start"; }
    return { stage: s.labels.stage, n: d.count, mean: d.count ? (1000 * d.sum) / d.count : null,
             p50: quantile(d.buckets, 0.5), p95: quantile(d.buckets, 0.95), window };
  });
  return table([
    { label: "stage", key: "stage" }, { label: "requests", key: "n", num: true },
    { label: "mean ms", num: true, render: (r) => fmt(r.mean) },
    { label: "p50 ms", num: true, render: (r) => fmt(r.p50 === null ? null : 1000 * r.p50) },
    { label: "p95 ms", num: true, render: (r) => fmt(r.p95 === null ? null : 1000 * r.p95) },
    { label: "window", key: "window" },
  ], rows, { empty: "no recommendation served yet" });
}

function rates(cur, old) {
  const req = counter(cur.metrics, "winnow_requests_total");
  const isApi = (l) => !NOT_API.test(l.route);
  const isRec = (l) => /recommendations/.test(l.route);
  const totals = {
    api: sumBy(req, isApi),
    err5: sumBy(req, (l) => isApi(l) && +l.status >= 500),
    err4: sumBy(req, (l) => isApi(l) && +l.status >= 400 && +l.status < 500),
    recs: sumBy(req, isRec),
    fallbacks: sumBy(counter(cur.metrics, "winnow_fallbacks_total")),
  };
  if (!old) return { totals, rate: null, errRate: totals.api ? totals.err5 / totals.api : null,
                     fbRate: totals.recs ? totals.fallbacks / totals.recs : null };
  const oreq = counter(old.metrics, "winnow_requests_total");
  const dt = Math.max(cur.time - old.time, 1e-3);
  const dApi = totals.api - sumBy(oreq, isApi);
  const dErr = totals.err5 - sumBy(oreq, (l) => isApi(l) && +l.status >= 500);
  const dRec = totals.recs - sumBy(oreq, isRec);
  const dFb = totals.fallbacks - sumBy(counter(old.metrics, "winnow_fallbacks_total"));
  return { totals, rate: dApi / dt, errRate: dApi > 0 ? dErr / dApi : 0, fbRate: dRec > 0 ? dFb / dRec : 0 };
}

function card(label, value, id) {
  return h("div", { class: "card", id }, h("div", { class: "v" }, value), h("div", { class: "l" }, label));
}

function draw(root, cur) {
  const r = rates(cur, prev);
  const stageP95 = {};
  for (const s of cur.metrics.histograms.winnow_stage_seconds || []) {
    const b = prev && (prev.metrics.histograms.winnow_stage_seconds || []).find((x) => x.labels.stage === s.labels.stage);
    const d = diffHist(b, s);
    stageP95[s.labels.stage] = d.count > 0 ? 1000 * quantile(d.buckets, 0.95) : null;
  }
  if (prev) {
    history.push({ t: new Date(cur.time * 1000).toISOString().slice(11, 19), rate: r.rate, err: r.errRate,
                   fb: r.fbRate, p95: stageP95 });
    history = history.slice(-HISTORY);
  }
  const c = cur.counts;
  const fbs = counter(cur.metrics, "winnow_fallbacks_total");
  const stages = Object.keys(stageP95);
  root.replaceChildren(
    h("h1", {}, "Overview"),
    h("div", { class: "cards" },
      card("catalog items (store)", fmt(c.items), "count-items"),
      card("users (store)", fmt(c.users), "count-users"),
      card("events (store)", fmt(c.events), "count-events"),
      card("impressions logged", fmt(c.impressions), "count-impressions"),
      card("items in the serving catalog", fmt(cur.catalog_items)),
      card("API requests / s", r.rate === null ? "…" : fmt(r.rate), "req-rate"),
      card("5xx error rate", r.errRate === null ? "–" : pct(r.errRate), "err-rate"),
      card("fallback rate (per rec. request)", r.fbRate === null ? "–" : pct(r.fbRate), "fb-rate"),
    ),
    h("div", { class: "panel" },
      h("div", {}, "Model ", h("b", {}, cur.model_version || "none"), ` (${cur.mode}) · sources `,
        cur.sources.map((s) => h("span", { class: "chip" }, s)), " · rules ",
        cur.rules.map((s) => h("span", { class: "chip rule" }, s))),
      h("div", { class: "muted" }, `API requests since start: ${fmt(r.totals.api)} · 5xx: ${fmt(r.totals.err5)} · 4xx: ${fmt(r.totals.err4)} · recommendation requests: ${fmt(r.totals.recs)} · fallbacks: ${fmt(r.totals.fallbacks)}`),
      fbs.length ? h("div", {}, "fallbacks by kind: ", fbs.map((s) => h("span", { class: "chip fb" }, `${s.labels.fallback}: ${fmt(s.value)}`))) : null),
    h("div", { class: "grid2" },
      h("div", { class: "panel" }, h("h2", {}, "Latency per pipeline stage"), stageTable(cur, prev)),
      h("div", { class: "panel" }, h("h2", {}, "Live (every 2 s)"),
        history.length < 2 ? h("div", { class: "empty" }, "collecting samples…") : [
          lineChart([{ name: "req/s", values: history.map((x) => x.rate) }], history.map((x) => x.t), { title: "API requests per second" }),
          lineChart(stages.map((st) => ({ name: st, values: history.map((x) => x.p95[st] ?? null) })), history.map((x) => x.t), { title: "p95 latency per stage (ms)" }),
          legend(stages),
          lineChart([{ name: "5xx", values: history.map((x) => (x.err ?? 0) * 100) }, { name: "fallback", values: history.map((x) => (x.fb ?? 0) * 100) }], history.map((x) => x.t), { title: "error and fallback rate (%)" }),
          legend(["5xx errors", "fallbacks"]),
        ])),
  );
  prev = cur;
  root.dataset.samples = String(history.length);
}

export async function render(root) {
  leave();
  prev = null;
  history = [];
  const first = await api("/ui/api/stats");
  draw(root, first);
  timer = setInterval(async () => {
    const mine = timer;
    try {
      const cur = await api("/ui/api/stats");
      if (timer === mine) draw(root, cur); // the page may have been left meanwhile
    } catch (err) {
      if (timer === mine) root.replaceChildren(errorBox(err));
    }
  }, POLL_MS);
}
