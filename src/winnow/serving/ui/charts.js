// Small SVG charts (no library): line chart, grouped bars, interval (forest) plot.
const NS = "http://www.w3.org/2000/svg";
export const COLORS = ["#2f6fde", "#e4572e", "#17a398", "#f3a712", "#6b4c9a", "#8a8d91", "#c2185b", "#33658a"];

function s(tag, attrs = {}, text) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  if (text !== undefined) el.textContent = text;
  return el;
}

function niceMax(v) {
  if (!(v > 0)) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

function label(v) {
  if (Math.abs(v) >= 1000) return v.toLocaleString("en-US", { maximumFractionDigits: 0 });
  return Number(v.toPrecision(3)).toString();
}

function frame(width, height, yMin, yMax, pad) {
  const svg = s("svg", { class: "chart", width, height, viewBox: `0 0 ${width} ${height}`, role: "img" });
  const y = (v) => pad.t + (height - pad.t - pad.b) * (1 - (v - yMin) / (yMax - yMin || 1));
  for (let i = 0; i <= 4; i++) {
    const v = yMin + ((yMax - yMin) * i) / 4;
    svg.append(s("line", { class: "axis", x1: pad.l, x2: width - pad.r, y1: y(v), y2: y(v), "stroke-dasharray": i ? "2,3" : "" }));
    svg.append(s("text", { x: pad.l - 4, y: y(v) + 3, "text-anchor": "end" }, label(v)));
  }
  return { svg, y };
}

export function legend(names) {
  const div = document.createElement("div");
  div.className = "legend";
  names.forEach((n, i) => {
    const span = document.createElement("span");
    const sw = document.createElement("i");
    sw.style.background = COLORS[i % COLORS.length];
    span.append(sw, document.createTextNode(n));
    div.append(span);
  });
  return div;
}

// series: [{name, values: [number|null]}], labels: x labels (same length as values)
export function lineChart(series, labels, { width = 520, height = 180, title = "" } = {}) {
  const all = series.flatMap((x) => x.values).filter((v) => v !== null && Number.isFinite(v));
  const pad = { l: 44, r: 10, t: title ? 18 : 8, b: 22 };
  const yMax = niceMax(Math.max(0, ...all));
  const { svg, y } = frame(width, height, 0, yMax, pad);
  if (title) svg.append(s("text", { x: pad.l, y: 11 }, title));
  const n = Math.max(1, labels.length);
  const x = (i) => pad.l + ((width - pad.l - pad.r) * (n === 1 ? 0.5 : i / (n - 1)));
  const step = Math.max(1, Math.ceil(n / 6));
  labels.forEach((lb, i) => {
    if (i % step === 0) svg.append(s("text", { x: x(i), y: height - 6, "text-anchor": i === 0 && n > 1 ? "start" : (i === n - 1 && n > 1 ? "end" : "middle") }, lb));
  });
  series.forEach((ser, k) => {
    const pts = ser.values.map((v, i) => (v === null || !Number.isFinite(v) ? null : `${x(i).toFixed(1)},${y(v).toFixed(1)}`));
    const color = COLORS[k % COLORS.length];
    let run = [];
    const flush = () => { if (run.length > 1) svg.append(s("polyline", { points: run.join(" "), fill: "none", stroke: color, "stroke-width": 1.8 })); run = []; };
    pts.forEach((p) => { if (p === null) flush(); else run.push(p); });
    flush();
    pts.forEach((p) => { if (p !== null) { const [cx, cy] = p.split(","); svg.append(s("circle", { cx, cy, r: 1.8, fill: color })); } });
  });
  return svg;
}

// groups: x labels; series: [{name, values: [number]}] one value per group
export function barChart(groups, series, { width = 520, height = 200, title = "" } = {}) {
  const all = series.flatMap((x) => x.values).filter((v) => Number.isFinite(v));
  const pad = { l: 44, r: 10, t: title ? 18 : 8, b: 34 };
  const { svg, y } = frame(width, height, 0, niceMax(Math.max(0, ...all)), pad);
  if (title) svg.append(s("text", { x: pad.l, y: 11 }, title));
  const gw = (width - pad.l - pad.r) / Math.max(1, groups.length);
  const bw = Math.max(2, (gw * 0.8) / Math.max(1, series.length));
  groups.forEach((g, i) => {
    series.forEach((ser, k) => {
      const v = ser.values[i];
      if (!Number.isFinite(v)) return;
      const x0 = pad.l + i * gw + gw * 0.1 + k * bw;
      const bar = s("rect", { x: x0, y: y(v), width: bw - 1, height: Math.max(0, y(0) - y(v)), fill: COLORS[k % COLORS.length] });
      bar.append(s("title", {}, `${ser.name} ${g}: ${label(v)}`));
      svg.append(bar);
    });
    svg.append(s("text", { x: pad.l + i * gw + gw / 2, y: height - 20, "text-anchor": "middle" }, String(g).slice(0, 14)));
  });
  return svg;
}

// rows: [{label, value, lo, hi}]; ref: optional vertical reference value (e.g. 0 or the truth)
export function intervalPlot(rows, { width = 520, ref = null, refLabel = "" } = {}) {
  const rowH = 22, pad = { l: 150, r: 20, t: 8, b: 22 };
  const height = pad.t + pad.b + rowH * rows.length;
  const vals = rows.flatMap((r) => [r.lo, r.hi, r.value]).concat(ref === null ? [] : [ref]).filter(Number.isFinite);
  let lo = Math.min(...vals), hi = Math.max(...vals);
  if (!(hi > lo)) { lo -= 1; hi += 1; }
  const span = hi - lo; lo -= 0.05 * span; hi += 0.05 * span;
  const x = (v) => pad.l + ((width - pad.l - pad.r) * (v - lo)) / (hi - lo);
  const svg = s("svg", { class: "chart", width, height, viewBox: `0 0 ${width} ${height}`, role: "img" });
  for (let i = 0; i <= 4; i++) {
    const v = lo + ((hi - lo) * i) / 4;
    svg.append(s("line", { class: "axis", x1: x(v), x2: x(v), y1: pad.t, y2: height - pad.b, "stroke-dasharray": "2,3" }));
    svg.append(s("text", { x: x(v), y: height - 6, "text-anchor": "middle" }, label(v)));
  }
  if (ref !== null) {
    svg.append(s("line", { x1: x(ref), x2: x(ref), y1: pad.t, y2: height - pad.b, stroke: "#c62828", "stroke-width": 1.2 }));
    if (refLabel) svg.append(s("text", { x: x(ref) + 3, y: pad.t + 8, fill: "#c62828" }, refLabel));
  }
  rows.forEach((r, i) => {
    const cy = pad.t + rowH * i + rowH / 2;
    svg.append(s("text", { x: pad.l - 6, y: cy + 3, "text-anchor": "end" }, r.label));
    if (Number.isFinite(r.lo) && Number.isFinite(r.hi)) svg.append(s("line", { x1: x(r.lo), x2: x(r.hi), y1: cy, y2: cy, stroke: COLORS[0], "stroke-width": 2 }));
    if (Number.isFinite(r.value)) svg.append(s("circle", { cx: x(r.value), cy, r: 4, fill: COLORS[0] }));
  });
  return svg;
}
