"""The autopilot's status: cycles, their stages, timings and gate results, from the cycle records.

One implementation behind ``winnow autopilot status`` (``format_status``: text) and
``GET /v1/admin/autopilot`` + the dashboard's Autopilot page (``status_data``: JSON-able data).
``format_status`` prints what ``status_data`` returns, so the two cannot disagree.

``status_data(records, last=)`` -> ``{"total": n, "cycles": [cycle, ...]}``, newest last, where a
cycle is ``{cycle, status, started_at, finished_at, trigger, attempts, reason, stages, gate,
handoff}``: ``stages`` one entry per recorded stage in run order ``{name, status, wall_s, cpu_s,
peak_rss_mib, runs, skipped_runs, summary, error}`` (``summary``: the stage's outputs in words),
``gate`` the gate stage's verdict with every check (None before the gate ran), ``handoff`` the
hand-off stage's outputs (action, ACTIVE before/after, rollout) or None.
"""

from __future__ import annotations

import time
from typing import Any

from winnow.cyclelog.record import STAGES


def _when(t: Any) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(int(t))) if t else "-"


def _num(v: Any) -> str:
    return f"{v:.4f}" if isinstance(v, (int, float)) else "-"


def stage_summary(name: str, stage: dict[str, Any]) -> str:
    """A stage's outputs in words ("" when it recorded none); a failed stage's error."""
    out = stage.get("outputs") or {}
    if name == "snapshot" and out:
        return f"cut {out['cut']}, {out['events']:,} events, {out['items']:,} items"
    if name == "datasets" and out:
        return (f"train {out['train_events']:,} / holdout {out['holdout_events']:,} events, "
                f"{out['users_evaluated']:,} users")
    if name == "gate" and out:
        return f"{'passed' if out['passed'] else 'failed'}: {out['challenger']} vs {out['champion']}"
    if name in ("fit", "write") and out:
        return f"bundle {out['version']}"
    if name == "handoff" and out:
        text = f"{out['action']}; ACTIVE {out['active_after']}"
        if out.get("rollout") and str(out["action"]).startswith("canary started"):
            text += f"; plan {out['rollout'].get('plan', '-')}"
        return text
    return str(stage.get("error") or "")


def cycle_status(rec: dict[str, Any]) -> dict[str, Any]:
    """One cycle record as status data (see the module docstring)."""
    stages = []
    for name in [s for s in STAGES if s in rec.get("stages", {})]:
        st = rec["stages"][name]
        stages.append({"name": name, "status": st.get("status", "?"), "wall_s": st.get("wall_s"),
                       "cpu_s": st.get("cpu_s"), "peak_rss_mib": st.get("peak_rss_mib"),
                       "runs": st.get("runs", 1), "skipped_runs": st.get("skipped_runs", 0),
                       "summary": stage_summary(name, st), "error": st.get("error")})
    handoff = (rec.get("stages", {}).get("handoff") or {}).get("outputs") or None
    gate = rec.get("gate")
    if gate is not None:  # the record keeps the verdict; every check is in the gate stage's outputs
        checks = ((rec["stages"].get("gate") or {}).get("outputs") or {}).get("checks", [])
        gate = {**gate, "checks": checks}
    return {"cycle": rec["cycle"], "status": rec["status"], "started_at": rec["started_at"],
            "finished_at": rec.get("finished_at"), "trigger": rec.get("trigger"),
            "attempts": rec.get("attempts", 1), "reason": rec.get("reason"), "stages": stages,
            "gate": gate, "handoff": handoff}


def status_data(records: list[dict[str, Any]], *, last: int = 10) -> dict[str, Any]:
    """The newest ``last`` cycles (newest last) of ``records`` (oldest first, record.load_records)."""
    if last < 1:
        raise ValueError(f"last must be >= 1, got {last}")
    return {"total": len(records), "cycles": [cycle_status(r) for r in records[-last:]]}


def _gate_lines(gate: dict[str, Any]) -> list[str]:
    lines = [f"  gate: {'PASSED' if gate['passed'] else 'FAILED'}  challenger {gate['challenger']} "
             f"vs champion {gate['champion']}"]
    for who in ("challenger", "champion"):
        m = gate["metrics"].get(who)
        if m:
            lines.append(f"    {who:<10} ndcg {_num(m['ndcg'])}  recall {_num(m['recall'])}  "
                         f"coverage {_num(m['coverage'])}  ({m['users']} users)")
    if gate.get("champion_saw_holdout"):
        lines.append("    change checks not applied: the champion trained on the holdout window")
    for reason in gate["reasons"]:
        lines.append(f"    failed: {reason}")
    ope = gate.get("ope") or {}
    if ope.get("status") == "estimated":
        lines.append(f"    SNIPS clicks/slate {ope['value']:.4f} [{ope['ci'][0]:.4f}, {ope['ci'][1]:.4f}] "
                     f"(logged {ope['logged_value']:.4f}, {ope['matches']} matching rows)")
    else:
        lines.append(f"    off-policy: {ope.get('status', '-')}: {ope.get('why', '')}")
    return lines


def format_status(records: list[dict[str, Any]], *, last: int = 10) -> str:
    """``status_data`` as text: the newest ``last`` cycles, newest last; one block per cycle."""
    if not records:
        return "no autopilot cycle has run yet (winnow autopilot --once runs one)"
    lines: list[str] = []
    for c in status_data(records, last=last)["cycles"]:
        lines.append(f"cycle {c['cycle']}  {c['status'].upper()}  started {_when(c['started_at'])} UTC"
                     + (f"  finished {_when(c['finished_at'])} UTC" if c["finished_at"] else ""))
        if c["trigger"]:
            lines.append(f"  trigger: {c['trigger']}  (attempts {c['attempts']})")
        if c["reason"]:
            lines.append(f"  reason: {c['reason']}")
        for st in c["stages"]:
            wall = st["wall_s"]
            lines.append(f"  {st['name']:<9} {st['status']:<7} {f'{wall:8.2f} s' if wall is not None else '       - s'}"
                         f"  peak {st['peak_rss_mib'] or '-'} MiB  {st['summary']}")
        if c["gate"]:
            lines.extend(_gate_lines(c["gate"]))
    return "\n".join(lines)
