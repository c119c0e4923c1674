"""What ``winnow rollout status`` and ``GET /v1/admin/rollout`` show: the record with every
decision and its evidence, plus the measurements now (a canary's arms and the decision that would
be due; a shadow's comparison summary)."""

from __future__ import annotations

import time
from typing import Any

from winnow.core.config import WinnowConfig
from winnow.data.rollouts import Rollout, clean
from winnow.data.store import Store
from winnow.rollout import arms as rollout_arms
from winnow.rollout import control
from winnow.rollout.compare import summarise
from winnow.rollout.decide import Verdict, evaluate

SHADOW_RECORDS = 20_000  # newest shadow records summarised


def tracker_for(config: WinnowConfig, r: Rollout) -> rollout_arms.ArmTracker:
    """A fresh incremental aggregate of canary ``r``'s arms (winnow.rollout.arms.ArmTracker)."""
    return rollout_arms.ArmTracker(r, click_events=tuple(config.feedback.click_events),
                                   purchase_events=tuple(config.ranker.purchase_events))


def measure(store: Store, config: WinnowConfig, r: Rollout, *, now: float | None = None,
            tracker: rollout_arms.ArmTracker | None = None) -> tuple[Verdict | None, dict[str, Any]]:
    """(decision due or None, evidence) of canary ``r`` from the store now. With ``tracker`` (of
    this rollout, kept by the caller between looks) only the rows that arrived since its last
    look are read; without, everything is (a fresh tracker)."""
    if tracker is None or tracker.rollout_id != r.id:
        tracker = tracker_for(config, r)
    with tracker.lock:
        tracker.update(store)
        arms, switched = tracker.arms(r.step_started)
        return evaluate(r, arms, switched, now=time.time() if now is None else now)


def report(store: Store, config: WinnowConfig, rollout_id: int | None = None, *,
           tracker: rollout_arms.ArmTracker | None = None) -> dict[str, Any]:
    """JSON-able status of the running (else latest, or ``rollout_id``) rollout; 404 if none.
    ``tracker``: the caller's incremental aggregate (see ``measure``)."""
    r = control.status(store, rollout_id)
    out: dict[str, Any] = {"rollout": r.to_dict()}
    if r.mode == "shadow":
        out["shadow"] = summarise(store.read_shadow(r.id, limit=SHADOW_RECORDS))
    else:
        verdict, evidence = measure(store, config, r, tracker=tracker)
        out["now"] = {"due": None if verdict is None or not r.running else
                      {"action": verdict.action, "rule": verdict.rule}, "evidence": evidence}
    return clean(out)


def format_report(rep: dict[str, Any]) -> str:
    """Plain-text rendering for the CLI."""
    r = rep["rollout"]
    lines = [f"rollout {r['id']}: {r['mode']} of {r['challenger']} against {r['champion']} -- state {r['state']}"]
    if r["mode"] == "canary":
        lines.append(f"plan {r['plan']}  step {r['step'] + 1}/{len(r['plan'])}  challenger share {r['share']:.0%}")
        now = rep.get("now") or {}
        for arm, v in ((now.get("evidence") or {}).get("arms") or {}).items():
            lines.append(f"  {arm:<11} requests {v['requests']:>7}  users {v['exposed_users']:>6}  "
                         f"metric {_f(v['metric_mean'])}  errors {_f(v['error_rate'])}  empty {_f(v['empty_rate'])}  "
                         f"fallback {_f(v['fallback_rate'])}  p99 {_f(v['p99_ms'])} ms")
        test = (now.get("evidence") or {}).get("test")
        if test:
            lines.append(f"  challenger - champion {test['diff']:+.4f}, always-valid interval "
                         f"[{test['low']:+.4f}, {test['high']:+.4f}] (alpha {test['alpha']}), p {test['p_value']:.3g}")
        for rate, t in ((now.get("evidence") or {}).get("rate_tests") or {}).items():
            lines.append(f"  {rate:<13} increase {t['diff']:+.4f}, always-valid interval [{t['low']:+.4f}, "
                         f"{t['high']:+.4f}] (alpha {t['alpha']}), allowed {t['limit']:+.4f}"
                         f"{'  BREACH' if t['breach'] else ''}")
        if now.get("due"):
            lines.append(f"  due now: {now['due']['action']} ({now['due']['rule']})")
        elif (now.get("evidence") or {}).get("waiting") and r["running"]:
            lines.append(f"  waiting: {now['evidence']['waiting']}")
    else:
        s = rep.get("shadow") or {}
        lines.append(f"  shadowed requests {s.get('requests', 0)}  errors {s.get('errors', 0)}  "
                     f"overlap@k {_f(s.get('overlap'))}  RBO {_f(s.get('rbo'))}  only champion "
                     f"{_f(s.get('only_champion'))}  only challenger {_f(s.get('only_challenger'))}")
        for stage, v in (s.get("challenger_ms") or {}).items():
            lines.append(f"  challenger {stage:<9} p50 {v['p50']:.2f} ms  p99 {v['p99']:.2f} ms")
    lines.append("decisions:")
    for d in r["decisions"]:
        when = time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(d["at"]))
        lines.append(f"  {when}  step {d['step'] + 1}  {d['action']:<10} {d['rule']}")
    return "\n".join(lines)


def _f(v: Any) -> str:
    return "-" if v is None else f"{v:.4f}" if isinstance(v, float) else str(v)
