"""Profiles of a time window of the store, for drift monitoring (winnow.evaluation.drift).

``window_profile(store, config, since=, until=, calibration=None)`` -> {"window": [since,
until], "events", "event_mix" {type: count}, "item_counts" {item id: events}, "user_activity" /
"item_activity" (QUANTILES quantiles of events per active user / item), "new_item_share" (the
share of the window's events on items the catalog says were created at most ``[drift]
new_item_days`` before the event; items without ``created_at`` are never new), and the served
part (winnow.evaluation.drift_served: "served_hit_share", "served_items", "source_scores",
"candidate_recall", "candidate_positives", "calibration" when asked)}. The live ranker-feature
profile ("ranker_features") is added by ``drift_report.compare_live`` (winnow.evaluation.
drift_features): it needs the bundle. Every stored event counts (all types, negative ones too: the traffic
mix is an input).

``reference_profile`` is what a bundle stores (``profile.json``): the same, with the item counts
cut to the ``[drift] top_items`` most frequent items plus an "other" total, and the bundle's
ranker profile (``ranker_profile``: feature and score quantiles on the ranker's training lists,
its calibration table, which lists it learned from) when it has a learned ranker.
Profiles written before a field existed lack it; ``drift.compare`` skips what either side lacks.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from winnow.core.config import WinnowConfig
from winnow.data.store import Store
from winnow.evaluation.drift import calibration_table, quantiles
from winnow.evaluation.drift_served import served_profile


def _new_item_share(store: Store, config: WinnowConfig, item_ids: list[str], item: np.ndarray,
                    timestamp: np.ndarray) -> float | None:
    """Share of the events (item codes into ``item_ids``, unix seconds) on items created at most
    ``new_item_days`` before the event; None without events."""
    if len(item) == 0:
        return None
    cat = store.read_item_scalars()[["item_id", "created_at"]].dropna()
    created = pd.Series(cat["created_at"].to_numpy(np.float64), index=cat["item_id"].astype(str))
    born = created.reindex(item_ids).to_numpy(np.float64)[np.asarray(item, np.int64)]
    age = np.asarray(timestamp, np.float64) - born  # NaN for an item without created_at: never new
    return float(np.mean((age >= 0) & (age <= config.drift.new_item_days * 86400)))


def window_profile(store: Store, config: WinnowConfig, *, since: int, until: int,
                   calibration: tuple[str, list[float]] | None = None) -> dict[str, Any]:
    """The profile of the events with since <= timestamp < until (module docstring);
    ``calibration``: (bundle version, score bin edges) to bin that bundle's served items by."""
    log = store.read_events(since=since, until=until)
    mix = np.bincount(np.asarray(log.event_type, np.int64), minlength=len(log.event_types)) if len(log) \
        else np.zeros(0, np.int64)
    per_item = np.bincount(np.asarray(log.item, np.int64)) if len(log) else np.zeros(0, np.int64)
    per_user = np.bincount(np.asarray(log.user, np.int64)) if len(log) else np.zeros(0, np.int64)
    active = np.flatnonzero(per_item)
    return {"window": [int(since), int(until)], "events": len(log),
            "event_mix": {log.event_types[i]: int(c) for i, c in enumerate(mix) if c},
            "item_counts": {log.item_ids[int(i)]: int(per_item[i]) for i in active},
            "user_activity": quantiles(per_user[per_user > 0]),
            "item_activity": quantiles(per_item[active]),
            "new_item_share": _new_item_share(store, config, list(log.item_ids), log.item, log.timestamp),
            **served_profile(store, config, since=since, until=until, calibration=calibration, events=len(log))}


def feature_quantiles(names: list[str], x: np.ndarray) -> dict[str, list[float]]:
    """{name: ``QUANTILES`` quantiles of column j of ``x`` (float [n, len(names)])}, NaN (a
    missing value) left out; [] for a column without a value."""
    x = np.asarray(x, np.float64).reshape(-1, len(names))
    return {name: quantiles(x[np.isfinite(x[:, j]), j]) for j, name in enumerate(names)}


def ranker_profile(names: list[str], x: np.ndarray, y: np.ndarray, scores: np.ndarray, *,
                   labels: str, feature_window: tuple[np.ndarray, tuple[int, int]] | None = None) -> dict[str, Any]:
    """A learned ranker's reference: ``x`` float [n, len(names)] its training rows' features,
    ``y`` [n] their labels (> 0 positive), ``scores`` [n] the ranker's scores of those rows;
    ``labels``: "impressions" (rows are shown slate items, labelled by what the user did next)
    or "history" (candidate lists carved from history). -> {"labels", "rows", "features" {name:
    quantiles (NaN, a missing value, left out)}, "scores": quantiles, "calibration":
    drift.calibration_table}. ``feature_window``: (rows' features, (since, until)) to take the
    feature quantiles from instead of ``x`` (the training rows of the last window: "feature_window",
    "feature_rows")."""
    fx, span = (x, None) if feature_window is None else feature_window
    out = {"labels": labels, "rows": int(len(y)), "features": feature_quantiles(names, fx),
           "scores": quantiles(scores), "calibration": calibration_table(scores, np.asarray(y) > 0)}
    if span is not None:
        out.update(feature_window=[int(span[0]), int(span[1])], feature_rows=int(len(fx)))
    return out


def reference_profile(store: Store, config: WinnowConfig, *, until: int,
                      ranker: dict[str, Any] | None = None) -> dict[str, Any]:
    """The bundle's reference: the profile of the last ``[drift] window_days`` before ``until``,
    item counts cut to the ``top_items`` most frequent (ties by id) plus an "other" total;
    ``ranker``: the bundle's ``ranker_profile`` (stored as "ranker")."""
    since = int(until - config.drift.window_days * 86400)
    prof = window_profile(store, config, since=since, until=until)
    counts = prof.pop("item_counts")
    top = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:config.drift.top_items]
    prof["popularity"] = {"top": dict(top), "other": int(sum(counts.values()) - sum(c for _, c in top))}
    if ranker is not None:
        prof["ranker"] = ranker
    return prof
