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

- scores (each source's on shown items, the ranker's): the same two distances, the IQR floored
  at ``SCORE_IQR_FLOOR`` instead of 1;
- the ranker's calibration: ``calibration_table`` (reference: score-decile bins, positive rate
  per bin) and ``calibration_gap`` (live: |observed - predicted| / predicted click rate).
- each ranker feature (``feature:<name>``, rows with ``group`` "ranker_feature"): its quantiles on
  served slates, recomputed by winnow.evaluation.drift_features, against the reference's; W1
  divided by ``feature_scale`` (the reference's IQR, else its 1st-99th percentile spread, else 1)
  and KS; compared when the reference rows are shown slate items too (labels "impressions") and
  the live sample has ``min_served`` rows.

Kinds: **data drift** = the inputs moved (event mix, popularity, activity, new-item share, source
and ranker scores, the ranker's features). **Concept drift** = the relation moved: the share of the window's positive
events on items the service had shown that user (its served slates' hit share) fell by more than
``served_drop`` against the same share in the reference window, or the ranker's observed click
rate on the slates it served left the rate its training lists predict for those scores by more
than ``calibration_gap`` (relative), or the logged candidate sets' share of later positives
(``candidate_recall``, winnow.evaluation.drift_served) fell by more than ``served_drop``, compared
from ``min_positives`` positives in each window. ``compare`` is the one implementation behind ``winnow drift
report``, ``GET /v1/admin/drift`` and the dashboard's Drift page.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import stats
from scipy.spatial import distance

EPS = 1e-4
QUANTILES = 101  # 0th..100th percentile
SCORE_IQR_FLOOR = 1e-6  # scores are not counts: a narrow reference spread is real
CALIBRATION_BINS = 10  # equal-count bins of the reference's ranker scores


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


def numeric(ref_q: list[float], live_q: list[float], *, floor: float = 1.0,
            scale: float | None = None) -> dict[str, float]:
    """Normalised Wasserstein-1 and the KS statistic between two quantile sets (module docstring);
    ``floor``: the smallest IQR divided by (1 for counts; scores use ``SCORE_IQR_FLOOR``);
    ``scale``: divide by this instead (ranker features: ``feature_scale``)."""
    r, q = np.asarray(ref_q, np.float64), np.asarray(live_q, np.float64)
    iqr = max(float(np.quantile(r, 0.75) - np.quantile(r, 0.25)), floor) if scale is None else scale
    return {"wasserstein": float(stats.wasserstein_distance(r, q)) / iqr,
            "ks": float(stats.ks_2samp(r, q).statistic)}


def feature_scale(ref_q: list[float]) -> float:
    """What a ranker feature's Wasserstein-1 is divided by: the reference's interquartile range;
    when that is 0 (a feature mostly at one value: a count that is usually 0, a source that
    proposes few items) the spread between its 1st and 99th percentiles; when that is 0 too
    (constant in the reference) 1, so a move by one unit reads 1.0."""
    r = np.asarray(ref_q, np.float64)
    for lo, hi in ((0.25, 0.75), (0.01, 0.99)):
        spread = float(np.quantile(r, hi) - np.quantile(r, lo))
        if spread > 0:
            return spread
    return 1.0


def calibration_table(scores: np.ndarray, clicked: np.ndarray) -> dict[str, Any]:
    """The reference calibration of a ranker: ``CALIBRATION_BINS`` - 1 inner edges at the
    equal-count quantiles of ``scores`` (float [n]), and per bin the rows ("shown"), the positive
    rows ("clicked", ``clicked`` bool [n]) and their share ("rate")."""
    s, c = np.asarray(scores, np.float64), np.asarray(clicked, bool)
    edges = np.unique(np.quantile(s, np.linspace(0, 1, CALIBRATION_BINS + 1)[1:-1])) if len(s) else np.zeros(0)
    bins = np.searchsorted(edges, s, side="right")
    shown = np.bincount(bins, minlength=len(edges) + 1)
    hits = np.bincount(bins, weights=c, minlength=len(edges) + 1)
    rate = np.divide(hits, shown, out=np.zeros(len(shown)), where=shown > 0)
    return {"edges": edges.tolist(), "shown": shown.astype(int).tolist(), "clicked": hits.astype(int).tolist(),
            "rate": rate.tolist()}


def calibration_gap(ref: dict[str, Any], live: dict[str, Any]) -> dict[str, float]:
    """Predicted vs observed click rate of the live window's shown items: predicted = the mean of
    the reference's click rate of each item's score bin, observed = clicked / shown; ``gap`` =
    |observed - predicted| / predicted (relative: click rates are small; predicted floored at EPS). ``live``: a
    calibration block of winnow.evaluation.drift_served binned with ``ref``'s edges."""
    shown, hits = np.asarray(live["shown"], np.float64), np.asarray(live["clicked"], np.float64)
    n = float(shown.sum())
    predicted = float((shown * np.asarray(ref["rate"], np.float64)).sum() / n) if n else 0.0
    observed = float(hits.sum() / n) if n else 0.0
    gap = abs(observed - predicted) / max(predicted, EPS)  # floored: the value stays finite (JSON)
    return {"predicted": predicted, "observed": observed, "gap": gap, "shown": n}


def _row(rows: list[dict[str, Any]], name: str, stat: str, value: float, limit: float, **extra: Any) -> None:
    rows.append({"name": name, "statistic": stat, "value": float(value), "threshold": limit,
                 "drifted": bool(value > limit), **extra})


def _categorical(rows: list[dict[str, Any]], name: str, ref: dict[str, float], live: dict[str, float],
                 thresholds: Any) -> None:
    keys = sorted(set(ref) | set(live))
    p, q = shares(ref, keys), shares(live, keys)
    _row(rows, name, "psi", psi(p, q), thresholds.psi)
    _row(rows, name, "js", js(p, q), thresholds.js)


def _numeric(rows: list[dict[str, Any]], name: str, ref_q: list[float], live_q: list[float], thresholds: Any,
             *, floor: float = 1.0) -> None:
    if ref_q and live_q:
        m = numeric(ref_q, live_q, floor=floor)
        _row(rows, name, "wasserstein", m["wasserstein"], thresholds.wasserstein)
        _row(rows, name, "ks", m["ks"], thresholds.ks)


def _ranker_rows(ref: dict[str, Any], live: dict[str, Any], thresholds: Any, data: list[dict[str, Any]],
                 concept: list[dict[str, Any]], notes: list[str]) -> None:
    """The ranker's score distribution (data) and calibration (concept), when comparable: the
    reference ranker learned from shown slates (labels "impressions", the served population) and
    the live window holds at least ``min_served`` items that bundle served."""
    rk, cal = ref.get("ranker"), live.get("calibration")
    if not rk:
        notes.append("ranker: the reference has no ranker profile (no learned ranker, or a bundle "
                     "written before ranker profiles)")
        return
    if rk.get("labels") != "impressions":
        notes.append("ranker: trained on lists carved from history, not on shown slates: its scores "
                     "and click rates are not comparable with served slates")
        return
    if cal is None or sum(cal["shown"]) < thresholds.min_served:
        got = 0 if cal is None else sum(cal["shown"])
        notes.append(f"ranker: {got} items served by this bundle in the live window, fewer than "
                     f"min_served = {thresholds.min_served}")
        return
    _numeric(data, "ranker_score", rk["scores"], cal["scores"], thresholds, floor=SCORE_IQR_FLOOR)
    g = calibration_gap(rk["calibration"], cal)
    _row(concept, "ranker_calibration", "relative_gap", g["gap"], thresholds.calibration_gap,
         predicted=g["predicted"], observed=g["observed"], shown=g["shown"])


def reference_features(ranker: dict[str, Any], min_rows: int) -> dict[str, list[float]] | None:
    """The reference feature quantiles live served slates compare with (``_feature_rows``): the
    training rows' when the ranker learned from served slates, else those of the reference
    window's served slates when they hold ``min_rows`` rows, else None (nothing comparable)."""
    if ranker.get("labels") == "impressions":
        return ranker.get("features") or None
    sf = ranker.get("served_features")
    return sf["features"] if sf and sf["rows"] >= min_rows and sf["features"] else None


def _feature_rows(ref: dict[str, Any], live: dict[str, Any], thresholds: Any, data: list[dict[str, Any]],
                  notes: list[str]) -> None:
    """Each ranker feature's live distribution on served slates (``feature:<name>``, data drift)
    against the reference's, when comparable: the reference rows are shown slate items -- the
    ranker's training rows when it learned from slates (labels "impressions"), else its features
    on the reference window's served slates (``served_features``, at least ``min_served`` rows)
    -- and the live sample holds at least ``min_served`` rows."""
    rk, lf = ref.get("ranker"), live.get("ranker_features")
    if not rk or not rk.get("features"):
        return  # _ranker_rows notes a missing ranker profile
    basis = reference_features(rk, thresholds.min_served)
    if basis is None:
        sf = rk.get("served_features")
        notes.append("ranker features: the reference rows are candidate lists carved from history, not "
                     "served slates, and " + (f"the reference window's served slates gave {sf['rows']} rows, fewer "
                                              f"than min_served = {thresholds.min_served}" if sf else
                                              "no served slate was logged in the reference window") +
                     ": not compared with the served slates' features")
        return
    if lf is None:
        notes.append("ranker features: no live feature profile (the bundle has no ranker feature files)")
        return
    if lf["rows"] < thresholds.min_served:
        notes.append(f"ranker features: {lf['rows']} rows in {lf['labelled_slates']} labelled slates of the "
                     f"{lf['slates']} sampled, fewer than min_served = {thresholds.min_served}")
        return
    for name, ref_q in basis.items():
        live_q = lf["features"].get(name) or []
        if ref_q and live_q:
            m = numeric(ref_q, live_q, scale=feature_scale(ref_q))
            _row(data, f"feature:{name}", "wasserstein", m["wasserstein"], thresholds.wasserstein, group="ranker_feature")
            _row(data, f"feature:{name}", "ks", m["ks"], thresholds.ks, group="ranker_feature")


def _candidate_row(ref: dict[str, Any], live: dict[str, Any], thresholds: Any, concept: list[dict[str, Any]],
                   notes: list[str]) -> None:
    """The candidate sets' share of later positives (``candidate_recall``, concept drift) against
    the reference's, when both windows hold ``min_positives`` positives of users with a logged set."""
    r, q = ref.get("candidate_recall"), live.get("candidate_recall")
    if r is None and q is None:
        return  # no candidate sets logged in either window ([drift] candidate_sample = 0)
    n_ref, n_live = int(ref.get("candidate_positives") or 0), int(live.get("candidate_positives") or 0)
    if r is None or q is None or min(n_ref, n_live) < thresholds.min_positives:
        notes.append(f"candidate_recall: {n_ref} reference / {n_live} live positives of users with a logged "
                     f"candidate set, fewer than min_positives = {thresholds.min_positives} in one of them")
        return
    _row(concept, "candidate_recall", "drop", float(r - q), thresholds.served_drop, reference=float(r),
         live=float(q), positives=n_live)


def compare(ref: dict[str, Any], live: dict[str, Any], thresholds: Any) -> dict[str, Any]:
    """Data-drift and concept-drift rows of ``live`` against ``ref`` (winnow.evaluation.
    drift_profile profiles); each row: name, statistic, value, threshold, drifted. A statistic
    one of the profiles lacks (a reference written by older code, an empty live window) gives no
    row; ``notes`` says why for the ranker's. ``thresholds``: ``DriftConfig``."""
    data: list[dict[str, Any]] = []
    notes: list[str] = []
    if not live.get("events") or not ref.get("events"):  # nothing to compare: say so, flag nothing
        empty = "live" if not live.get("events") else "reference"
        return {"data": [], "concept": [], "notes": [f"no events in the {empty} window"],
                "data_drift": False, "concept_drift": False, "concept_note": f"no events in the {empty} window"}
    _categorical(data, "event_mix", ref["event_mix"], live["event_mix"], thresholds)
    top = list(ref["popularity"]["top"])
    ref_pop = {**ref["popularity"]["top"], "(other)": ref["popularity"]["other"]}
    live_pop = {k: live["item_counts"].get(k, 0) for k in top}
    live_pop["(other)"] = sum(live["item_counts"].values()) - sum(live_pop.values())
    _categorical(data, "item_popularity", ref_pop, live_pop, thresholds)
    for name in ("user_activity", "item_activity"):
        _numeric(data, name, ref[name], live[name], thresholds)
    r_new, l_new = ref.get("new_item_share"), live.get("new_item_share")
    if r_new is not None and l_new is not None:
        _categorical(data, "new_item_share", {"new": r_new, "seen": 1 - r_new}, {"new": l_new, "seen": 1 - l_new},
                     thresholds)
    live_src = live.get("source_scores") or {}
    for name, q in sorted((ref.get("source_scores") or {}).items()):
        _numeric(data, f"source_score:{name}", q, live_src.get(name, []), thresholds, floor=SCORE_IQR_FLOOR)
    concept: list[dict[str, Any]] = []
    r_hit, l_hit = ref.get("served_hit_share"), live.get("served_hit_share")
    if r_hit is not None and l_hit is not None:
        _row(concept, "served_hit_share", "drop", float(r_hit - l_hit), thresholds.served_drop)
    _candidate_row(ref, live, thresholds, concept, notes)
    _ranker_rows(ref, live, thresholds, data, concept, notes)
    _feature_rows(ref, live, thresholds, data, notes)
    return {"data": data, "concept": concept, "notes": notes,
            "data_drift": any(r["drifted"] for r in data), "concept_drift": any(r["drifted"] for r in concept),
            "concept_note": None if concept else "no served slates with positives in one of the windows"}
