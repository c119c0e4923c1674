// Item page: metadata, catalog flags and popularity, similar items, exposure and clicks per day,
// cold-start blend weight when the bundle has a content model.
import { api, errorBox, fmt, h, itemLink, pct, table, ts } from "../lib.js";
import { barChart, legend, lineChart } from "../charts.js";

function searchBox(initial) {
  const input = h("input", { type: "search", id: "item-search", placeholder: "item id (prefix)", value: initial, autocomplete: "off" });
  const suggest = h("div", { class: "suggest", id: "item-suggest" });
  let pending = 0;
  const lookup = async () => {
    const mine = ++pending;
    try {
      const res = await api(`/ui/api/items?q=${encodeURIComponent(input.value)}&limit=12`);
      if (mine !== pending) return;
      suggest.replaceChildren(...(res.items.length ? res.items.map((i) =>
        h("button", { type: "button", onclick: () => { location.hash = `#/item/${encodeURIComponent(i)}`; } }, i))
        : [h("span", { class: "empty" }, "no item matches")]));
    } catch (err) {
      suggest.replaceChildren(errorBox(err));
    }
  };
  let t = null;
  input.addEventListener("input", () => { clearTimeout(t); t = setTimeout(lookup, 200); });
  const form = h("form", { class: "toolbar", onsubmit: (e) => { e.preventDefault(); if (input.value) location.hash = `#/item/${encodeURIComponent(input.value)}`; } },
    h("label", {}, "Item ", input), h("button", { type: "submit", class: "primary" }, "Open"));
  lookup();
  return [form, suggest];
}

function kv(pairs) {
  return table([{ label: "field", key: "k" }, { label: "value", render: (r) => (r.v instanceof Node ? r.v : (typeof r.v === "object" && r.v !== null ? JSON.stringify(r.v) : fmt(r.v))) }],
    pairs.map(([k, v]) => ({ k, v })));
}

export async function render(root, itemId) {
  root.replaceChildren(h("h1", {}, "Items"), ...searchBox(itemId || ""));
  if (!itemId) {
    root.append(h("div", { class: "empty" }, "Pick an item to see its metadata, similar items and exposure over time."));
    return;
  }
  const d = await api(`/ui/api/items/${encodeURIComponent(itemId)}?days=30`);
  const it = d.item || {};
  const c = d.catalog;
  const tl = d.timeline;
  const events = Object.entries(tl.events);
  root.append(
    h("div", { class: "grid2" },
      h("div", { class: "panel", id: "item-meta" }, h("h2", {}, "Item ", itemLink(d.item_id), " ", h("b", {}, it.title || "")),
        it.text ? h("p", { class: "muted" }, it.text) : null,
        kv([["categories", (it.categories || []).join(", ") || "–"], ["creator", it.creator || "–"],
            ["created at (UTC)", ts(it.created_at)], ["available", String(c ? c.available : it.available)],
            ["sponsored", String(c ? c.sponsored : it.sponsored)], ["attributes", it.attributes || {}],
            ["in the serving model", String(d.in_model)]])),
      h("div", { class: "panel", id: "item-stats" }, h("h2", {}, "Popularity and cold start"),
        c ? kv([["primary category (model)", c.category || "–"], ["popularity", c.popularity], ["popularity rank", `${c.popularity_rank} of the catalog`],
                ["trending", c.trending], ["has an embedding (ALS)", String(c.has_embedding)]]) : h("div", { class: "empty" }, "not in the serving catalog"),
        h("h3", {}, "Cold-start blend weight"),
        d.cold_start.present
          ? h("div", { id: "cold-start" }, `w = n / (n + item_k) = ${fmt(d.cold_start.n_train_events)} / (${fmt(d.cold_start.n_train_events)} + ${fmt(d.cold_start.item_k)}) = `, h("b", {}, fmt(d.cold_start.weight)),
              h("div", { class: "muted" }, "share of the two-tower item vector that is collaborative (the rest is content-only); n: the item's training events"))
          : h("div", { class: "muted", id: "cold-start" }, `not applicable: ${d.cold_start.reason}`))),
    h("div", { class: "panel", id: "item-timeline" }, h("h2", {}, `Exposure and clicks, last ${tl.days.length} days (UTC)`),
      h("div", { class: "muted" }, `${fmt(tl.impressions_total)} impressions · ${fmt(tl.events_total)} events · CTR ${tl.ctr === null ? "–" : pct(tl.ctr)} · mean position ${tl.mean_position === null ? "–" : fmt(tl.mean_position + 1)}`),
      tl.impressions_total || tl.events_total ? [
        lineChart([{ name: "impressions", values: tl.impressions }, { name: "clicks", values: tl.clicks }], tl.days.map((x) => x.slice(5)), { width: 900, title: "per day" }),
        legend(["impressions (served slates)", "clicks"]),
        events.length ? barChart(events.map(([t]) => t), [{ name: "events", values: events.map(([, v]) => v.reduce((a, b) => a + b, 0)) }], { width: 420, title: "events by type in the window" }) : null,
      ] : h("div", { class: "empty" }, "no impression or event for this item in the window")),
    h("div", { class: "panel", id: "item-similar" }, h("h2", {}, "Similar items"),
      table([{ label: "item", render: (r) => itemLink(r.item_id) }, { label: "title", render: (r) => r.title || "" },
             { label: "categories", render: (r) => (r.categories || []).join(", ") }, { label: "score", key: "score", num: true },
             { label: "from", render: (r) => r.sources.map((s) => h("span", { class: "chip" }, s)) }], d.similar,
      { empty: "no similar item (no model in the bundle knows this item)" })));
}

export { errorBox };
