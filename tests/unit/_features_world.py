"""A small random world (events, catalog with categories/creators/attributes, users) for the
feature-store tests."""

from __future__ import annotations

import numpy as np
import pandas as pd

from winnow.core.ids import IdMap
from winnow.data.interactions import Dataset, Interactions
from winnow.features import FeatureCatalog, fit_spec


def make_world(seed: int = 0, n_users: int = 30, n_items: int = 60, n_events: int = 1500):
    rng = np.random.default_rng(seed)
    t0 = 1_600_000_000
    ts = t0 + np.sort(rng.integers(0, 40 * 86_400, n_events))
    user = rng.integers(0, n_users, n_events)
    item = rng.integers(0, n_items, n_events)
    ts[::7] = ts[::7] // 3600 * 3600  # some exact ties on the hour
    inter = Interactions.from_arrays(user, item, timestamp=ts, n_users=n_users, n_items=n_items)
    cats = ["a", "b", "c", "d", "e"]
    items = pd.DataFrame({
        "item_id": [f"i{i}" for i in range(n_items)],
        "title": "", "text": "",
        "categories": [list(rng.choice(cats, size=rng.integers(0, 3), replace=False)) for _ in range(n_items)],
        "creator": [f"c{rng.integers(0, 8)}" if rng.random() < 0.8 else "" for _ in range(n_items)],
        "created_at": pd.array([t0 - int(rng.integers(0, 900)) * 86_400 if rng.random() < 0.9 else None
                                for _ in range(n_items)], dtype="Int64"),
        "available": True, "sponsored": False,
        "attributes": [{"price": float(rng.uniform(1, 50))} for _ in range(n_items)],
    })
    users = pd.DataFrame({
        "user_id": [f"u{u}" for u in range(n_users)],
        "created_at": pd.array([None] * n_users, dtype="Int64"),
        "attributes": [{"age": int(rng.integers(15, 70)), "gender": str(rng.choice(["F", "M"]))}
                       for _ in range(n_users)],
        "interests": [[] for _ in range(n_users)],
    })
    ds = Dataset("world", inter, IdMap("user", list(users["user_id"])), IdMap("item", list(items["item_id"])),
                 items=items, users=users)
    spec = fit_spec(ds, ["s1", "s2"], half_life_s=5 * 86_400.0)
    return ds, spec, FeatureCatalog.from_dataset(ds, spec)


def random_sources(rng: np.random.Generator, n: int) -> tuple[dict, dict]:
    score = {s: np.where(rng.random(n) < 0.7, rng.normal(size=n), np.nan) for s in ("s1", "s2")}
    rank = {s: np.where(np.isnan(v), np.nan, np.argsort(np.argsort(-np.nan_to_num(v, nan=-9)))).astype(float)
            for s, v in score.items()}
    return score, rank


def assert_same_features(a, b, t: float, *, n_users: int, n_items: int, seed: int = 0) -> None:
    """Two ``OnlineFeatureState``s give the same features for every user (and an unknown one,
    -1), on random item lists at ``t`` and three days earlier."""
    rng = np.random.default_rng(seed)
    for user in [*range(n_users), -1]:
        for when in (t, t - 86_400 * 3):
            items = rng.choice(n_items, min(20, n_items), replace=False)
            score, rank = random_sources(rng, len(items))
            fa = a.features(user, items, when, src_score=score, src_rank=rank)
            fb = b.features(user, items, when, src_score=score, src_rank=rank)
            np.testing.assert_allclose(fa, fb, rtol=1e-6, atol=1e-9, equal_nan=True, err_msg=f"user {user}")
        assert a.has_history(user) == b.has_history(user)
