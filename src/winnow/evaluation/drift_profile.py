"""Profiles of a time window of the store, for drift monitoring (winnow.evaluation.drift).

``window_profile(store, config, since=, until=)`` -> {"window": [since, until], "events",
"event_mix" {type: count}, "item_counts" {item id: events}, "user_activity" / "item_activity"
(QUANTILES quantiles of events per active user / item), "served_hit_share"}. Every stored event
counts (all types, negative ones too: the traffic mix is an input). ``served_hit_share``: the
share of the window's positive events (``[feedback] click_events`` and ``[ranker]
purchase_events``) on an item the service had shown that user within ``[feedback]
attribution_window_s`` before; None when the window has no positive event or no impression.

``reference_profile`` is what a bundle stores (``profile.json``): the same, with the item
counts cut to the ``[drift] top_items`` most frequent items plus an "other" total.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from winnow.core.config import WinnowConfig
from winnow.data.store import Store
from winnow.evaluation.drift import quantiles


def _served_hit_share(store: Store, config: WinnowConfig, since: int, until: int) -> float | None:
    fb = config.feedback
    types = sorted(set(fb.click_events) | set(config.ranker.purchase_events))
    pos = store.read_feedback_events(event_types=types, since=since)
    pos = pos[pos["timestamp"] < until]
    shown = [(str(imp["user_id"]), str(it["item_id"]), int(imp["timestamp"]))
             for imp in store.read_impressions(since=since - fb.attribution_window_s)
             if int(imp["timestamp"]) < until for it in imp["items"]]
    if len(pos) == 0 or not shown:
        return None
    slates = pd.DataFrame(shown, columns=["user_id", "item_id", "shown_at"])
    pos = pos.reset_index(drop=True).rename_axis("row").reset_index()
    pairs = pos.merge(slates, on=["user_id", "item_id"], how="inner")
    ok = (pairs["shown_at"] <= pairs["timestamp"]) & (pairs["timestamp"] - pairs["shown_at"] <= fb.attribution_window_s)
    return float(pairs.loc[ok, "row"].nunique() / len(pos))


def window_profile(store: Store, config: WinnowConfig, *, since: int, until: int) -> dict[str, Any]:
    """The profile of the events with since <= timestamp < until (module docstring)."""
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
            "served_hit_share": _served_hit_share(store, config, since, until)}


def reference_profile(store: Store, config: WinnowConfig, *, until: int) -> dict[str, Any]:
    """The bundle's reference: the profile of the last ``[drift] window_days`` before ``until``,
    item counts cut to the ``top_items`` most frequent (ties by id) plus an "other" total."""
    since = int(until - config.drift.window_days * 86400)
    prof = window_profile(store, config, since=since, until=until)
    counts = prof.pop("item_counts")
    top = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:config.drift.top_items]
    prof["popularity"] = {"top": dict(top), "other": int(sum(counts.values()) - sum(c for _, c in top))}
    return prof
