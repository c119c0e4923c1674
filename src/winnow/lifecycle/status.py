"""``winnow autopilot status``: the cycle records as text (cycles, stages, timings, gate results)."""

from __future__ import annotations

import time
from typing import Any

from winnow.lifecycle.record import STAGES


def _when(t: Any) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(int(t))) if t else "-"


def _num(v: Any) -> str:
    return f"{v:.4f}" if isinstance(v, (int, float)) else "-"


def format_status(records: list[dict[str, Any]], *, last: int = 10) -> str:
    """The newest ``last`` cycles, newest last; one block per cycle."""
    if not records:
        return "no autopilot cycle has run yet (winnow autopilot --once runs one)"
    lines: list[str] = []
    for rec in records[-last:]:
        lines.append(f"cycle {rec['cycle']}  {rec['status'].upper()}  started {_when(rec['started_at'])} UTC"
                     + (f"  finished {_when(rec['finished_at'])} UTC" if rec.get("finished_at") else ""))
        if rec.get("trigger"):
            lines.append(f"  trigger: {rec['trigger']}  (attempts {rec.get('attempts', 1)})")
        if rec.get("reason"):
            lines.append(f"  reason: {rec['reason']}")
        for name in [s for s in STAGES if s in rec["stages"]]:
            st = rec["stages"][name]
            wall = st.get("wall_s")
            extra = ""
            out = st.get("outputs") or {}
            if name == "snapshot" and out:
                extra = f"cut {out['cut']}, {out['events']:,} events, {out['items']:,} items"
            elif name == "datasets" and out:
                extra = (f"train {out['train_events']:,} / holdout {out['holdout_events']:,} events, "
                         f"{out['users_evaluated']:,} users")
            elif name in ("fit", "write") and out:
                extra = f"bundle {out['version']}"
            elif name == "handoff" and out:
                extra = f"{out['action']}; ACTIVE {out['active_after']}"
                if out.get("rollout") and out["action"].startswith("canary started"):
                    extra += f"; plan {out['rollout'].get('plan', '-')}"
            elif st.get("error"):
                extra = st["error"]
            lines.append(f"  {name:<9} {st['status']:<7} {f'{wall:8.2f} s' if wall is not None else '       - s'}"
                         f"  peak {st.get('peak_rss_mib') or '-'} MiB  {extra}")
        gate = rec.get("gate")
        if gate:
            lines.append(f"  gate: {'PASSED' if gate['passed'] else 'FAILED'}  challenger {gate['challenger']} "
                         f"vs champion {gate['champion']}")
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
    return "\n".join(lines)
