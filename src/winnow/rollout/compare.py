"""Comparing a shadow challenger's slate with the champion's, per request.

- ``overlap@k``: |top-k(A) & top-k(B)| / k.
- Rank-biased overlap (Webber, Moffat, Zobel, "A similarity measure for indefinite rankings",
  ACM TOIS 28(4), 2010), extrapolated form for two lists seen to depth k (their eq. 32):
  RBO_ext = X_k / k * p^k + (1 - p) / p * sum_{d=1..k} X_d / d * p^d, X_d = |A[:d] & B[:d]|;
  1 for identical lists, 0 for disjoint ones; p (0.9) weights the top ranks.
- ``only_champion`` / ``only_challenger``: share of the union only one side proposed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

RBO_P = 0.9


def overlap_at_k(a: Sequence[Any], b: Sequence[Any], k: int) -> float:
    if k <= 0:
        return float("nan")
    return len(set(a[:k]) & set(b[:k])) / k


def rbo(a: Sequence[Any], b: Sequence[Any], *, p: float = RBO_P) -> float:
    """Extrapolated rank-biased overlap of two rankings (truncated to the shorter's depth);
    NaN when either is empty."""
    k = min(len(a), len(b))
    if k == 0:
        return float("nan")
    seen_a: set[Any] = set()
    seen_b: set[Any] = set()
    common = 0
    total = 0.0
    for d in range(1, k + 1):
        x, y = a[d - 1], b[d - 1]
        if x == y:
            common += 1
        else:
            common += (x in seen_b) + (y in seen_a)
        seen_a.add(x)
        seen_b.add(y)
        total += common / d * p ** d
    return float(common / k * p ** k + (1 - p) / p * total)


def compare_slates(champion: Sequence[Any], challenger: Sequence[Any], *, k: int,
                   champion_scores: Sequence[float] = (), challenger_scores: Sequence[float] = ()) -> dict[str, Any]:
    """One shadow record's comparison fields (see module docstring) plus score summaries."""
    union = set(champion) | set(challenger)
    n = len(union) or 1
    return {"k": k, "overlap": overlap_at_k(list(champion), list(challenger), k),
            "rbo": rbo(list(champion), list(challenger)),
            "only_champion": len(set(champion) - set(challenger)) / n,
            "only_challenger": len(set(challenger) - set(champion)) / n,
            "n_champion": len(champion), "n_challenger": len(challenger),
            "champion_scores": score_summary(champion_scores),
            "challenger_scores": score_summary(challenger_scores)}


def score_summary(scores: Sequence[float]) -> dict[str, float | None]:
    s = np.asarray(scores, np.float64)
    s = s[np.isfinite(s)]
    if not len(s):
        return {"mean": None, "min": None, "p50": None, "max": None}
    return {"mean": float(s.mean()), "min": float(s.min()), "p50": float(np.median(s)), "max": float(s.max())}


def summarise(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Aggregate shadow records: means of the comparison fields, error share, challenger stage
    latency percentiles (ms), score distribution of both sides (means of the per-request summaries)."""
    ok = [r for r in records if not r.get("error")]
    out: dict[str, Any] = {"requests": len(records), "errors": len(records) - len(ok),
                           "error_rate": (len(records) - len(ok)) / len(records) if records else None}
    for key in ("overlap", "rbo", "only_champion", "only_challenger"):
        vals = np.asarray([r[key] for r in ok if r.get(key) is not None], np.float64)
        out[key] = float(vals.mean()) if len(vals) else None
    stages: dict[str, list[float]] = {}
    for r in ok:
        for stage, ms in (r.get("challenger_ms") or {}).items():
            stages.setdefault(stage, []).append(float(ms))
    out["challenger_ms"] = {s: {"p50": float(np.percentile(v, 50)), "p99": float(np.percentile(v, 99))}
                            for s, v in stages.items()}
    for side in ("champion_scores", "challenger_scores"):
        means = [r[side]["mean"] for r in ok if (r.get(side) or {}).get("mean") is not None]
        out[side] = {"mean": float(np.mean(means)) if means else None}
    return out
