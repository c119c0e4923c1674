// Shared helpers: DOM building (text only, never innerHTML of data), JSON fetch, formatting.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") el.className = v;
    else if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(el.dataset, v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

export class ApiError extends Error {
  constructor(status, detail) {
    super(`HTTP ${status}: ${detail}`);
    this.status = status;
    this.detail = detail;
  }
}

export async function api(path, { method = "GET", body, headers = {} } = {}) {
  const opts = { method, headers: { Accept: "application/json", ...headers } };
  // the API key (admin scope) saved in this browser goes with every dashboard call
  const token = getKey();
  if (token && !opts.headers.Authorization) opts.headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) {
    opts.body = JSON.stringify(body);
    opts.headers["Content-Type"] = "application/json";
  }
  const res = await fetch(path, opts);
  const text = await res.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (_) { data = text; }
  if (!res.ok) {
    const detail = data && typeof data === "object" && "detail" in data ? data.detail : text;
    throw new ApiError(res.status, typeof detail === "string" ? detail : JSON.stringify(detail));
  }
  return data;
}

export function fmt(v, digits = 3) {
  if (v === null || v === undefined || (typeof v === "number" && Number.isNaN(v))) return "–";
  if (typeof v !== "number") return String(v);
  if (Number.isInteger(v) && Math.abs(v) >= 1000) return v.toLocaleString("en-US");
  if (Number.isInteger(v)) return String(v);
  if (Math.abs(v) >= 100) return v.toFixed(1);
  return v.toPrecision(digits);
}

export function pct(v) {
  return v === null || v === undefined || Number.isNaN(v) ? "–" : `${(100 * v).toFixed(1)}%`;
}

export function ts(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  return new Date(seconds * 1000).toISOString().replace("T", " ").slice(0, 19) + "Z";
}

export function table(columns, rows, { empty = "nothing to show" } = {}) {
  if (!rows.length) return h("div", { class: "empty" }, empty);
  const head = h("tr", {}, columns.map((c) => h("th", { class: c.num ? "num" : null }, c.label)));
  const body = rows.map((r) => h("tr", {}, columns.map((c) => {
    const v = c.render ? c.render(r) : r[c.key];
    return h("td", { class: c.num ? "num" : null }, v instanceof Node || Array.isArray(v) ? v : fmt(v));
  })));
  return h("table", {}, h("thead", {}, head), h("tbody", {}, body));
}

export function errorBox(err) {
  return h("div", { class: "error", role: "alert" }, err instanceof Error ? err.message : String(err));
}

export function itemLink(id) {
  return h("a", { href: `#/item/${encodeURIComponent(id)}`, class: "mono" }, id);
}

export function userLink(id) {
  return h("a", { href: `#/user/${encodeURIComponent(id)}`, class: "mono" }, id);
}

// replaceChildren that, like h(), skips null/false and flattens arrays
export function fill(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

export const KEY_STORE = "winnow.apiKey";

export function getKey() {
  return localStorage.getItem(KEY_STORE) || "";
}

export function setKey(token) {
  if (token) localStorage.setItem(KEY_STORE, token.trim());
  else localStorage.removeItem(KEY_STORE);
}
