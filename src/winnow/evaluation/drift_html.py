"""``winnow drift report --html F``: a drift report (winnow.evaluation.drift_report) as one
self-contained HTML page (no script, no external file): the two flags, the per-statistic table
of data drift and of concept drift, and the notes on what was not compared. The service's
dashboard renders the same report JSON (``GET /v1/admin/drift``) in its Drift page."""

from __future__ import annotations

from html import escape
from typing import Any

_STYLE = ("body{font:14px system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse;"
          "margin-bottom:1.5em}td,th{border:1px solid #ccc;padding:4px 10px;text-align:left}"
          "td.num{text-align:right;font-variant-numeric:tabular-nums}tr.drift td{background:#fde2e1}"
          ".flag{font-weight:bold}.yes{color:#b00020}.no{color:#1b5e20}")


def _table(rows: list[dict[str, Any]]) -> str:
    body = "".join(
        f"<tr class=\"{'drift' if r['drifted'] else 'ok'}\"><td>{escape(str(r['name']))}</td>"
        f"<td>{escape(str(r['statistic']))}</td><td class=\"num\">{r['value']:.4f}</td>"
        f"<td class=\"num\">{r['threshold']}</td><td>{'DRIFT' if r['drifted'] else 'ok'}</td></tr>"
        for r in rows)
    return ("<table><thead><tr><th>feature</th><th>statistic</th><th>value</th><th>threshold</th>"
            f"<th>verdict</th></tr></thead><tbody>{body}</tbody></table>")


def format_html(rep: dict[str, Any]) -> str:
    """The report as a standalone HTML document (module docstring)."""
    ref, live = rep["reference"], rep["live"]
    parts = [f"<!doctype html><html><head><meta charset=\"utf-8\"><title>drift report {escape(rep['bundle'])}"
             f"</title><style>{_STYLE}</style></head><body>",
             f"<h1>Drift report: bundle {escape(rep['bundle'])}</h1>",
             f"<p>reference window {ref['window']} ({ref['events']:,} events) vs live window "
             f"{live['window']} ({live['events']:,} events)</p>"]
    for kind, what in (("data", "inputs moved"), ("concept", "the relation moved")):
        flag = rep[f"{kind}_drift"]
        parts.append(f"<h2>{kind.capitalize()} drift ({what}): <span class=\"flag {'yes' if flag else 'no'}\">"
                     f"{'YES' if flag else 'no'}</span></h2>")
        parts.append(_table(rep[kind]) if rep[kind] else f"<p>{escape(str(rep.get('concept_note') or 'no rows'))}</p>")
    notes = rep.get("notes") or []
    if notes:
        parts.append("<h2>Not compared</h2><ul>" + "".join(f"<li>{escape(n)}</li>" for n in notes) + "</ul>")
    parts.append("</body></html>")
    return "\n".join(parts)
