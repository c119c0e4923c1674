"""Drift statistics: a reference profile (what a bundle was trained on) against a recent window
of the store, data drift told apart from concept drift.

Statistics (scipy; every one is unit-tested against hand-computed values):
- categorical distributions (event-type mix, item popularity over the reference's top items +
  "other"): PSI = sum (p_live - p_ref) * ln(p_live / p_ref), shares floored at ``EPS`` so an
  empty category stays finite; and the Jensen-Shannon distance (scipy.spatial.distance, base 2,
  in [0, 1]);
- numeric distributions (events per user, events per item), kept as ``QUANTILES`` quantiles:
  the Wasserstein-1 distance between the two quantile sets (scipy.stats.wasserstein_distance)
  divided by the reference's interquartile range (floored at 1: counts), and the two-sample KS
  statistic between them (max CDF gap, scipy.stats.ks_2samp; its p-value is not used, the
  quantile sets are summaries, not samples).

Kinds: **data drift** = the inputs moved (event mix, popularity, activity). **Concept drift** =
the relation moved: the share of the window's positive events on items the service had shown
that user (its served slates' hit share) fell by more than ``served_drop``, against the same
share in the reference window.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import stats
from scipy.spatial import distance

EPS = 1e-4
QUANTILES = 101  # 0th..100th percentile


def shares(counts: dict[str, float], keys: list[str]) -> np.ndarray:
    """float64 [len(keys)] shares of ``counts`` over ``keys`` (a missing key counts 0)."""
    c = np.array([float(counts.get(k, 0.0)) for k in keys], np.float64)
    total = c.sum()
    return c / total if total > 0 else c


def psi(ref: np.ndarray, live: np.ndarray) -> float:
    """Population stability index of two share vectors over the same categories."""
    p, q = np.maximum(np.asarray(ref, np.float64), EPS), np.maximum(np.asarray(live, np.float64), EPS)
    return float(((q - p) * np.log(q / p)).sum())


def js(ref: np.ndarray, live: np.ndarray) -> float:
    """Jensen-Shannon distance (base 2, in [0, 1]) of two share vectors."""
    return float(distance.jensenshannon(ref, live, base=2.0))


def quantiles(values: np.ndarray) -> list[float]:
    """The ``QUANTILES`` quantiles (0..100th percentile) of ``values``; [] when empty."""
    v = np.asarray(values, np.float64)
    return np.quantile(v, np.linspace(0, 1, QUANTILES)).tolist() if len(v) else []


def numeric(ref_q: list[float], live_q: list[float]) -> dict[str, float]:
    """Normalised Wasserstein-1 and the KS statistic between two quantile sets (module docstring)."""
    r, q = np.asarray(ref_q, np.float64), np.asarray(live_q, np.float64)
    iqr = max(float(np.quantile(r, 0.75) - np.quantile(r, 0.25)), 1.0)
    return {"wasserstein": float(stats.wasserstein_distance(r, q)) / iqr,
            "ks": float(stats.ks_2samp(r, q).statistic)}


def compare(ref: dict[str, Any], live: dict[str, Any], thresholds: Any) -> dict[str, Any]:
    """Data-drift and concept-drift rows of ``live`` against ``ref`` (winnow.evaluation.
    drift_profile profiles); each row: name, statistic, value, threshold, drifted."""
    data: list[dict[str, Any]] = []

    def row(rows: list[dict[str, Any]], name: str, stat: str, value: float, limit: float) -> None:
        rows.append({"name": name, "statistic": stat, "value": value, "threshold": limit,
                     "drifted": bool(value > limit)})

    types = sorted(set(ref["event_mix"]) | set(live["event_mix"]))
    p, q = shares(ref["event_mix"], types), shares(live["event_mix"], types)
    row(data, "event_mix", "psi", psi(p, q), thresholds.psi)
    row(data, "event_mix", "js", js(p, q), thresholds.js)
    top = list(ref["popularity"]["top"])
    ref_pop = {**ref["popularity"]["top"], "(other)": ref["popularity"]["other"]}
    live_pop = {k: live["item_counts"].get(k, 0) for k in top}
    live_pop["(other)"] = sum(live["item_counts"].values()) - sum(live_pop.values())
    keys = [*top, "(other)"]
    p, q = shares(ref_pop, keys), shares(live_pop, keys)
    row(data, "item_popularity", "psi", psi(p, q), thresholds.psi)
    row(data, "item_popularity", "js", js(p, q), thresholds.js)
    for name in ("user_activity", "item_activity"):
        if ref[name] and live[name]:
            m = numeric(ref[name], live[name])
            row(data, name, "wasserstein", m["wasserstein"], thresholds.wasserstein)
            row(data, name, "ks", m["ks"], thresholds.ks)
    concept: list[dict[str, Any]] = []
    r_hit, l_hit = ref.get("served_hit_share"), live.get("served_hit_share")
    if r_hit is not None and l_hit is not None:
        row(concept, "served_hit_share", "drop", float(r_hit - l_hit), thresholds.served_drop)
    return {"data": data, "concept": concept,
            "data_drift": any(r["drifted"] for r in data), "concept_drift": any(r["drifted"] for r in concept),
            "concept_note": None if concept else "no served slates with positives in one of the windows"}
