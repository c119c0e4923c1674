"""Stage 4, gate: champion (the ACTIVE bundle) vs challenger (this cycle's bundle) on the same
holdout, and the verdict.

Checks (``decide``, pure arithmetic; every check is recorded with its value and threshold):
- value thresholds: the challenger's NDCG@k, recall@k, coverage@k >= the ``min_*`` floors
  (a NaN value fails);
- change thresholds, when there is a champion: per metric, the relative drop
  ``(champion - challenger) / champion <= max_relative_drop``; a champion value of 0 cannot
  drop, so that check passes and says so. When the champion trained on events of the holdout
  window (``champion_saw_holdout``: its data reaches past the holdout start, e.g. a bundle of
  ``winnow train`` on everything), its holdout figures measure memory, not quality (a 30-40%
  "lead" on the synthetic test world): the change checks are recorded with ``applied`` False
  and the verdict rests on the floors. In steady state the champion is the previous cycle's
  challenger, trained before that cycle's holdout start, so it never saw the current holdout.
The verdict passes only when every check passes; ``reasons`` lists the failed ones in words.
The off-policy estimate (winnow.lifecycle.offpolicy) is recorded beside the verdict, with its
CI, and does not decide it: a deterministic challenger rarely matches enough logged slates for
a narrow interval. """

from __future__ import annotations

import math
from typing import Any

from winnow.bundle import active_version, bundles_dir, load_bundle
from winnow.core.config import GateConfig, WinnowConfig
from winnow.data.store import Store
from winnow.lifecycle.datasets import CycleData
from winnow.lifecycle.offpolicy import challenger_snips
from winnow.lifecycle.scoring import bundle_topk, holdout_metrics

METRICS = ("ndcg", "recall", "coverage")


def decide(challenger: dict[str, float], champion: dict[str, float] | None, gate: GateConfig, *,
           champion_saw_holdout: bool = False) -> dict[str, Any]:
    """The verdict for the challenger's metrics (and the champion's on the same holdout, or None)."""
    floors = {"ndcg": gate.min_ndcg, "recall": gate.min_recall, "coverage": gate.min_coverage}
    k = gate.k
    checks: list[dict[str, Any]] = []
    for m in METRICS:
        value = float(challenger[m])
        ok = not math.isnan(value) and value >= floors[m]
        checks.append({"check": f"{m}@{k} floor", "value": value, "threshold": floors[m], "passed": ok})
        if champion is None:
            continue
        ref = float(champion[m])
        if not ref > 0:
            checks.append({"check": f"{m}@{k} drop vs champion", "value": None, "champion": ref,
                           "threshold": gate.max_relative_drop, "passed": True,
                           "note": "champion value is 0: nothing to drop from"})
            continue
        drop = (ref - value) / ref
        ok = not math.isnan(drop) and drop <= gate.max_relative_drop
        check = {"check": f"{m}@{k} drop vs champion", "value": drop, "champion": ref,
                 "threshold": gate.max_relative_drop, "passed": ok or champion_saw_holdout,
                 "applied": not champion_saw_holdout}
        if champion_saw_holdout:
            check["note"] = "not applied: the champion trained on the holdout window"
        checks.append(check)
    reasons = []
    for c in checks:
        if c["passed"]:
            continue
        if "floor" in c["check"]:
            reasons.append(f"{c['check']}: {c['value']:.4f} < {c['threshold']:.4f}")
        else:
            reasons.append(f"{c['check']}: {c['value']:.1%} > {c['threshold']:.1%} "
                           f"(champion {c['champion']:.4f})")
    return {"passed": not reasons, "checks": checks, "reasons": reasons}


def run_gate(config: WinnowConfig, store: Store, data: CycleData, challenger_version: str) -> dict[str, Any]:
    """The gate stage's outputs: both bundles' holdout metrics, the verdict, the SNIPS estimate."""
    gate = config.lifecycle.gate
    root = bundles_dir(config.home)
    challenger = load_bundle(root / challenger_version)
    champion_version = active_version(config.home)
    metrics: dict[str, Any] = {}
    recs = bundle_topk(challenger, gate.model, data, data.users, gate.k)
    metrics["challenger"] = holdout_metrics(recs, data, gate.k)
    champion_saw = None
    if champion_version is not None:
        champion = load_bundle(root / champion_version)
        metrics["champion"] = holdout_metrics(bundle_topk(champion, gate.model, data, data.users, gate.k),
                                              data, gate.k)
        until = champion.info.manifest.get("data", {}).get("until")
        champion_saw = until is not None and int(until) >= data.holdout_start
    verdict = decide(metrics["challenger"], metrics.get("champion"), gate,
                     champion_saw_holdout=bool(champion_saw))
    return {"challenger": challenger_version, "champion": champion_version, "champion_saw_holdout": champion_saw,
            "k": gate.k, "model": gate.model, "holdout": [data.holdout_start, data.cut],
            "metrics": metrics, **verdict, "ope": challenger_snips(store, challenger, data, config)}
