"""What the service served in a time window, for drift monitoring (winnow.evaluation.drift):
read once from the store's impression log (columnar: ``Store.read_shown_items`` /
``read_source_scores``, which the SQLite store unnests in SQL) and positive events, shared by the reference profile
(at training) and the live profile (``winnow drift report``, the service's drift monitor).

``served_profile(store, config, since=, until=, calibration=None)`` -> {
- "served_hit_share": the share of the window's positive events (``[feedback] click_events`` and
  ``[ranker] purchase_events``) on an item the service had shown that user within ``[feedback]
  attribution_window_s`` before; None when the window has no positive event or no impression;
- "served_items": how many slate items were shown in the window (estimated from the sample when
  "served_sample" < 1);
- "served_sample": the share of users the served reads took (winnow.data.user_sample; 1.0 = all):
  below 1 when the window holds more than ``[drift] served_max_events`` events or more than
  ``[drift] served_max_impressions`` logged slates (``Store.count_impressions``, counted without
  reading one: a server logs a slate per request, clicked or not, so the slates grow with the
  requests whatever the events), so a comparison's memory and CPU stop growing with the traffic;
  every share and rate here is per user or per positive of the sampled users, so it estimates
  the whole window's without bias;
- "candidate_recall" / "candidate_positives": the same share for the candidate sets a sampled
  share of requests logs (``[drift] candidate_sample``; ``candidate_recall`` below): of the
  positives of users with a logged set within the attribution window before, the share whose
  item the set contained -- what retrieval still finds, whatever the ranker then showed;
- "source_scores": {source name: ``QUANTILES`` quantiles of the score that source gave the
  items it proposed and the service showed} (from each shown item's logged ``src``);
- "calibration" (only when ``calibration`` = (bundle version, bin edges) is given): the shown
  items of the slates that bundle served in the window, binned by their logged score with the
  reference's edges: {"version", "shown": [per bin], "clicked": [per bin], "scores": quantiles}.
  An item counts as clicked when the user had a positive event on it within the attribution
  window after it was shown -- the same attribution as the ranker's impression training lists
  (winnow.features.impression_lists), so the reference's click rates and these compare.
}
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from winnow.core.config import DriftConfig, WinnowConfig
from winnow.data.store import Store
from winnow.data.user_sample import BUCKETS
from winnow.evaluation.drift import quantiles


def _attributed(shown: pd.DataFrame, pos: pd.DataFrame, window_s: int,
                on: tuple[str, ...] = ("user_id", "item_id")) -> pd.DataFrame:
    """(shown row, positive row) pairs where the positive followed the showing within the window;
    ``on``: the keys they share (the user alone: the positives a showing could have contained)."""
    pairs = pos.merge(shown, on=list(on), how="inner")
    ok = (pairs["shown_at"] <= pairs["timestamp"]) & (pairs["timestamp"] - pairs["shown_at"] <= window_s)
    return pairs.loc[ok]


def candidate_recall(store: Store, pos: pd.DataFrame, *, since: int, until: int,
                     window_s: int, user_sample: int | None = None) -> dict[str, Any]:
    """The logged candidate sets' share of later positives: of the window's positive events
    (``pos``: user_id, item_id, timestamp, row) by a user the service had logged a candidate set
    for within ``window_s`` before, the share whose item was in one of those sets ->
    {"candidate_recall": share or None (no such positive), "candidate_positives": their count}."""
    sets = store.read_candidate_sets(since=since - window_s, until=until, user_sample=user_sample)
    if not len(sets) or not len(pos):
        return {"candidate_recall": None, "candidate_positives": 0}
    cand = pd.DataFrame({"user_id": sets["user_id"], "item_id": sets["item_id"],
                         "shown_at": sets["timestamp"].to_numpy(np.int64)})
    heads = cand.drop_duplicates(subset=["user_id", "shown_at"])[["user_id", "shown_at"]]
    eligible = _attributed(heads, pos, window_s, on=("user_id",))["row"].unique()
    if not len(eligible):
        return {"candidate_recall": None, "candidate_positives": 0}
    hits = _attributed(cand, pos, window_s)["row"].nunique()
    return {"candidate_recall": float(hits / len(eligible)), "candidate_positives": int(len(eligible))}


def sample_for(events: int, max_events: int) -> int | None:
    """The user sample (buckets kept, winnow.data.user_sample) for a window of ``events`` events:
    None (everyone) up to ``max_events``, else about ``max_events / events`` of the users."""
    if events <= max_events:
        return None
    return max(1, -(-BUCKETS * max_events // events))


def served_sample(events: int, impressions: int, cfg: DriftConfig) -> int | None:
    """The user sample of a window's served reads: the smaller of ``sample_for`` by its
    ``events`` (``served_max_events``) and by its logged slates, ``impressions``
    (``served_max_impressions``); None (everyone) when neither is over its cap."""
    kept = [k for k in (sample_for(events, cfg.served_max_events),
                        sample_for(impressions, cfg.served_max_impressions)) if k is not None]
    return min(kept) if kept else None


def served_profile(store: Store, config: WinnowConfig, *, since: int, until: int,
                   calibration: tuple[str, list[float]] | None = None, events: int = 0) -> dict[str, Any]:
    """The served part of a window's profile (module docstring); ``events``: the window's event
    count (with the slates logged in the window, what the user sample is sized by:
    ``served_sample``)."""
    fb = config.feedback
    impressions = store.count_impressions(since=since - fb.attribution_window_s, until=until)
    keep = served_sample(events, impressions, config.drift)
    share = 1.0 if keep is None else keep / BUCKETS
    types = sorted(set(fb.click_events) | set(config.ranker.purchase_events))
    pos = store.read_feedback_events(event_types=types, since=since, user_sample=keep)
    pos = pos[pos["timestamp"] < until].reset_index(drop=True).rename_axis("row").reset_index()
    # columnar reads (Store.read_shown_items / read_source_scores): no per-impression Python loop
    items = store.read_shown_items(since=since - fb.attribution_window_s, until=until, user_sample=keep)
    ts = items["timestamp"].to_numpy(np.int64)
    shown = pd.DataFrame({"user_id": items["user_id"], "item_id": items["item_id"], "shown_at": ts,
                          "score": items["score"].to_numpy(np.float64),
                          "version": items["model_version"].where(ts >= since, "")})
    scores = store.read_source_scores(since=since, until=until, user_sample=keep)
    src = {str(name): group.to_numpy(np.float64) for name, group in scores.groupby("source", sort=True)["score"]}
    hit = None
    if len(pos) and len(shown):
        hit = float(_attributed(shown, pos, fb.attribution_window_s)["row"].nunique() / len(pos))
    out: dict[str, Any] = {"served_hit_share": hit,
                           "served_items": int(round(int((shown["shown_at"] >= since).sum()) / share)),
                           "served_sample": share,
                           "source_scores": {name: quantiles(v) for name, v in sorted(src.items())}}
    out.update(candidate_recall(store, pos, since=since, until=until, window_s=fb.attribution_window_s,
                                user_sample=keep))
    if calibration is not None:
        version, edges = calibration
        mine = shown[(shown["version"] == version) & (shown["shown_at"] >= since)].reset_index(drop=True)
        mine = mine.rename_axis("shown_row").reset_index()
        clicked = np.zeros(len(mine), bool)
        if len(mine) and len(pos):
            clicked[_attributed(mine, pos.drop(columns="row"), fb.attribution_window_s)["shown_row"].unique()] = True
        bins = np.searchsorted(np.asarray(edges, np.float64), mine["score"].to_numpy(np.float64), side="right")
        n_bins = len(edges) + 1
        out["calibration"] = {"version": version,
                              "shown": np.bincount(bins, minlength=n_bins).astype(int).tolist(),
                              "clicked": np.bincount(bins, weights=clicked, minlength=n_bins).astype(int).tolist(),
                              "scores": quantiles(mine["score"].to_numpy(np.float64))}
    return out
