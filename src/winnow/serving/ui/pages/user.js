// User inspector: search a user; history and attributes; the slate with explanations; what-if
// switches (sources, rules, k) shown side by side with the current slate.
import { api, errorBox, fill, fmt, h, itemLink, table, ts, userLink } from "../lib.js";

const DEFAULT_K = 10;

function ruleText(r) {
  const parts = [];
  if (r.moved) parts.push(`moved ${r.moved.from + 1}→${r.moved.to + 1}`);
  if (r.boost !== undefined) parts.push(`boost ${fmt(r.boost)}`);
  if (r.removed) parts.push(`removed: ${r.removed}`);
  for (const [k, v] of Object.entries(r)) {
    if (!["rule", "moved", "boost", "removed"].includes(k)) parts.push(`${k}: ${typeof v === "object" ? JSON.stringify(v) : v}`);
  }
  return `${r.rule}${parts.length ? " (" + parts.join(", ") + ")" : ""}`;
}

function contributions(trace) {
  const c = trace.contributions;
  if (!c || !Object.keys(c).length) return null;
  const top = Object.entries(c).sort((a, b) => Math.abs(b[1]) - Math.abs(a[1])).slice(0, 5);
  const max = Math.max(...top.map(([, v]) => Math.abs(v)), 1e-9);
  return h("div", { class: "contrib", title: "top feature contributions to the rank score" },
    top.map(([name, v]) => [h("span", { class: "mono" }, name),
      h("span", {}, h("span", { class: v < 0 ? "bar neg" : "bar", style: `width:${(100 * Math.abs(v)) / max}%` })),
      h("span", { class: "num" }, fmt(v))]));
}

function slateItem(it, { isNew = false } = {}) {
  const tr = it.trace || {};
  const srcs = Object.entries(tr.sources || {});
  const expl = tr.exploration || null;
  return h("li", { class: isNew ? "new" : null, dataset: { itemId: it.item_id }, title: isNew ? "not in the current slate" : null },
    h("div", {},
      h("span", { class: "pos" }, String(it.position + 1)), itemLink(it.item_id), " ",
      h("b", {}, it.title || ""), " ",
      (it.categories || []).slice(0, 2).map((c) => h("span", { class: "chip ok" }, c)),
      it.sponsored ? h("span", { class: "chip fb" }, "sponsored") : null,
      h("span", { class: "muted" }, ` score ${fmt(it.score)}`)),
    h("div", { class: "why" },
      "sources: ", srcs.length ? srcs.map(([name, s]) => h("span", { class: "chip", dataset: { source: name } },
        `${name} · score ${fmt(s.score)} · rank ${s.rank + 1}`)) : it.sources.map((s) => h("span", { class: "chip" }, s)),
      h("div", {}, `rank score ${fmt(tr.rank_score)}`,
        tr.rank_position !== null && tr.rank_position !== undefined ? ` (position ${tr.rank_position + 1} before re-ranking)` : "",
        ` · propensity ${fmt(it.propensity)}`,
        expl ? ` · exploration: ${typeof expl === "object" ? JSON.stringify(expl) : expl}` : ""),
      contributions(tr),
      (tr.rules || []).length ? h("div", { class: "rules" }, "rules: ",
        tr.rules.map((r) => h("span", { class: "chip rule", dataset: { rule: r.rule } }, ruleText(r)))) : null));
}

function slatePanel(title, data, baseline) {
  const base = baseline ? new Set(baseline.items.map((x) => x.item_id)) : null;
  const ids = new Set(data.items.map((x) => x.item_id));
  const gone = baseline ? baseline.items.filter((x) => !ids.has(x.item_id)) : [];
  const changed = baseline && (gone.length || data.items.some((x, i) => !baseline.items[i] || baseline.items[i].item_id !== x.item_id));
  return [
    h("h2", {}, title),
    h("div", { class: "muted" }, `k=${data.k} · ${data.n_candidates} candidates · ranker ${data.ranker} · `,
      `${fmt(data.timings_ms.total)} ms · `, data.fallbacks.length
        ? data.fallbacks.map((f) => h("span", { class: "chip fb" }, `fallback: ${f}`)) : h("span", { class: "chip ok" }, "no fallback"),
      baseline ? h("span", { class: changed ? "chip rule" : "chip ok", id: "variant-diff" },
        changed ? (gone.length ? `differs from current: ${gone.length} item(s) left the slate` : "differs from current: order changed") : "same as current") : null),
    data.exploration ? h("div", { class: "muted" }, `exploration: ${JSON.stringify(data.exploration)}`) : null,
    h("ol", { class: "slate" }, data.items.map((it) => slateItem(it, { isNew: base !== null && !base.has(it.item_id) }))),
    gone.length ? h("div", { class: "muted" }, "left the slate: ", gone.map((x) => [itemLink(x.item_id), " "])) : null,
    data.removed.length ? h("details", {}, h("summary", {}, `${data.removed.length} candidates removed by rules`),
      table([{ label: "item", render: (r) => itemLink(r.item_id) }, { label: "rule", key: "rule" }, { label: "reason", key: "reason" }],
        data.removed.slice(0, 200))) : null,
  ];
}

function searchBox(initial) {
  const input = h("input", { type: "search", id: "user-search", placeholder: "user id (prefix)", value: initial, autocomplete: "off" });
  const suggest = h("div", { class: "suggest", id: "user-suggest" });
  let pending = 0;
  const lookup = async () => {
    const mine = ++pending;
    try {
      const res = await api(`/ui/api/users?q=${encodeURIComponent(input.value)}&limit=12`);
      if (mine !== pending) return;
      suggest.replaceChildren(...(res.users.length ? res.users.map((u) =>
        h("button", { type: "button", onclick: () => { location.hash = `#/user/${encodeURIComponent(u)}`; } }, u))
        : [h("span", { class: "empty" }, "no user matches")]));
    } catch (err) {
      suggest.replaceChildren(errorBox(err));
    }
  };
  let t = null;
  input.addEventListener("input", () => { clearTimeout(t); t = setTimeout(lookup, 200); });
  const form = h("form", { class: "toolbar", onsubmit: (e) => { e.preventDefault(); if (input.value) location.hash = `#/user/${encodeURIComponent(input.value)}`; } },
    h("label", {}, "User ", input), h("button", { type: "submit", class: "primary" }, "Inspect"));
  lookup();
  return [form, suggest];
}

function profile(p) {
  const attrs = Object.entries(p.attributes || {});
  return h("div", { class: "panel", id: "profile" },
    h("h2", {}, "User ", userLink(p.user_id)),
    h("div", {}, p.known_to_model ? h("span", { class: "chip ok" }, "in the serving model") : h("span", { class: "chip fb" }, "not in the model (folded in / cold start)"),
      " created ", ts(p.created_at)),
    h("div", {}, "attributes: ", attrs.length ? attrs.map(([k, v]) => h("span", { class: "chip" }, `${k}=${typeof v === "object" ? JSON.stringify(v) : v}`)) : h("span", { class: "muted" }, "none")),
    h("div", {}, "interests: ", (p.interests || []).length ? p.interests.map((x) => h("span", { class: "chip ok" }, x)) : h("span", { class: "muted" }, "none")),
    h("h3", {}, `Recent history (last ${p.history.length} events, newest first)`),
    h("div", { class: "scroll" }, table([
      { label: "time (UTC)", render: (r) => ts(r.timestamp) }, { label: "event", key: "event_type" },
      { label: "item", render: (r) => itemLink(r.item_id) }, { label: "title", render: (r) => r.title || "" },
      { label: "categories", render: (r) => (r.categories || []).join(", ") }, { label: "value", key: "value", num: true },
    ], p.history, { empty: "no events" })));
}

export async function render(root, userId) {
  root.replaceChildren(h("h1", {}, "User inspector"), ...searchBox(userId || ""));
  if (!userId) {
    root.append(h("div", { class: "empty" }, "Pick a user to see their history and the slate the service would serve them."));
    return;
  }
  try {
    root.append(profile(await api(`/ui/api/users/${encodeURIComponent(userId)}?limit=20`)));
  } catch (err) {
    root.append(errorBox(err), h("div", { class: "muted" }, "An unknown user still gets a slate: the cold-start chain."));
  }
  const post = (body) => api(`/ui/api/users/${encodeURIComponent(userId)}/slate`, { method: "POST", body });
  const baseline = await post({ k: DEFAULT_K });
  const kInput = h("input", { type: "number", id: "k", min: 1, max: 200, value: DEFAULT_K, style: "width:5rem" });
  const box = (kind, name, label) => h("label", {}, h("input", { type: "checkbox", id: `${kind}-${name}`, checked: true, dataset: { kind, name } }), ` ${label}`);
  const controls = h("div", { class: "panel switches", id: "switches" },
    h("h2", {}, "What if…"),
    h("div", { class: "toolbar" }, h("label", {}, "k ", kInput),
      h("button", { type: "button", id: "reset", onclick: () => { kInput.value = DEFAULT_K; for (const c of controls.querySelectorAll("input[type=checkbox]")) c.checked = true; update(); } }, "reset")),
    h("div", {}, h("b", {}, "sources: "), baseline.sources.map((s) => box("source", s.name, `${s.name} (${s.kind}, w ${s.weight})`))),
    h("div", {}, h("b", {}, "rules: "), baseline.rules.map((r) => box("rule", r.name, r.name))));
  const left = h("div", { class: "panel", id: "slate-current" }, slatePanel(`Current slate (k=${DEFAULT_K}, everything on)`, baseline, null));
  const right = h("div", { class: "panel", id: "slate-variant" });
  root.append(controls, h("div", { class: "grid2" }, left, right));
  let seq = 0;
  async function update() {
    const mine = ++seq;
    const off = (kind) => [...controls.querySelectorAll(`input[data-kind=${kind}]`)].filter((c) => !c.checked).map((c) => c.dataset.name);
    const body = { k: Math.max(1, Math.min(200, parseInt(kInput.value, 10) || DEFAULT_K)), disable_sources: off("source"), disable_rules: off("rule") };
    right.dataset.ready = "false";
    try {
      const data = await post(body);
      if (mine !== seq) return;
      const what = [...body.disable_sources.map((s) => `−${s}`), ...body.disable_rules.map((r) => `−${r}`)].join(" ") || "no switch";
      fill(right, slatePanel(`With your switches (k=${body.k}; ${what})`, data, baseline));
    } catch (err) {
      if (mine === seq) right.replaceChildren(errorBox(err));
    }
    if (mine === seq) right.dataset.ready = "true";
  }
  controls.addEventListener("change", update);
  await update();
}
