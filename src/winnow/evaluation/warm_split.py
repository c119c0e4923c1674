"""A grown-catalog split for measuring warm starts (bench/warm_start.py, tests): what the previous
bundle trained on, what the next one trains on, and the held-out window both are scored on.

By event time: ``previous`` = events before the ``previous`` quantile (minus every event of a
random ``new_items`` share of the catalog, so those items are new to it), as its own Dataset
with its own id maps (catalog = the items and users its events name, in first-seen order);
``train`` = the full catalog's events before the ``current`` quantile; ``test`` = the rest.
``current`` holds the new id maps (every catalog item and user), so ids move between the two.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from winnow.core.config import EventsConfig
from winnow.data.interactions import Dataset, Interactions


@dataclass
class GrownSplit:
    previous: Dataset
    current: Dataset
    train: Interactions
    test: Interactions
    cuts: tuple[int, int]


def grown_split(events: pd.DataFrame, items: pd.DataFrame | None, users: pd.DataFrame | None,
                config: EventsConfig, *, previous: float = 0.9, current: float = 0.95,
                new_items: float = 0.0, seed: int = 0) -> GrownSplit:
    """The split above; ValueError unless 0 < previous < current < 1 and 0 <= new_items < 1."""
    from winnow.data.training_data import dataset_from_frames

    if not 0.0 < previous < current < 1.0 or not 0.0 <= new_items < 1.0:
        raise ValueError(f"need 0 < previous < current < 1 and 0 <= new_items < 1, got "
                         f"{previous}, {current}, {new_items}")
    ts = pd.to_numeric(events["timestamp"]).to_numpy(np.int64)
    t1, t2 = (int(np.quantile(ts, q, method="lower")) for q in (previous, current))
    ids = events["item_id"].astype(str)
    catalog = pd.unique(ids) if items is None else items["item_id"].astype(str).to_numpy()
    rng = np.random.default_rng(seed)
    held = set(rng.choice(catalog, int(round(new_items * len(catalog))), replace=False).tolist())
    prev_events = events[(ts < t1) & ~ids.isin(held).to_numpy()]
    seen_items = set(prev_events["item_id"].astype(str))
    seen_users = set(prev_events["user_id"].astype(str))
    prev_items = None if items is None else items[items["item_id"].astype(str).isin(seen_items)]
    prev_users = None if users is None else users[users["user_id"].astype(str).isin(seen_users)]
    prev = dataset_from_frames(prev_events, prev_items, prev_users, config, name="previous")
    cur = dataset_from_frames(events, items, users, config, name="current")
    inter = cur.interactions
    return GrownSplit(prev, cur, inter.subset(inter.timestamp < t2), inter.subset(inter.timestamp >= t2), (t1, t2))


def holdout_metrics(model: Any, train: Interactions, test: Interactions, *, k: int = 10,
                    max_users: int = 5000, seed: int = 0) -> dict[str, float]:
    """recall@k / ndcg@k of ``model`` (fitted on ``train``) on ``test``: users with events on both
    sides (a seeded sample of ``max_users``), training items excluded."""
    from winnow.metrics import evaluate_recs

    pos = test.subset(test.weight > 0)
    users = np.intersect1d(np.unique(pos.user), np.unique(train.user))
    if len(users) > max_users:
        users = np.sort(np.random.default_rng(seed).choice(users, max_users, replace=False))
    recs, _ = model.recommend(users, k, exclude=train.to_csr(binary=True))
    m = evaluate_recs(recs, pos, k=k, users=users)
    return {"recall": float(m[f"recall@{k}"]), "ndcg": float(m[f"ndcg@{k}"]), "users": int(len(users))}
