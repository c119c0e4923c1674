"""A swap to a bundle that knows more users and items remaps the serving ranker feature state
instead of replaying the event log, and serves exactly what a replay would (ml-latest-small).

The champion is trained on ml-latest-small's first 80% of events (by time), with only the items
they rate in the catalog; the rest of the 90% is then imported and the challenger trained on it:
its id maps start with the champion's and add users and items (the store's key order), as a
retrain does. Events are ingested into the serving state between the loads (known and unknown
users and items). The challenger's runtime built from the serving one (``serving_feed``) must
take the remap path, leave the champion's state untouched, and equal a runtime built by a
replay of the store: the same features for every sampled user over candidate lists with old and
new items, and the same slates. A second world ("rows") gives every item a price and every user
an age and a plan, and changes, before the challenger's training, 10% of the known items' prices
and 5% of their genres and 20% of the users' ages (the age bins, i.e. peer groups, move): the
remap corrects what was folded with those rows and still equals a replay. The reverse swap (a rollback to the champion, which drops the
challenger's new users and items) cannot remap and replays, saying why.
"""

from __future__ import annotations

import logging
import os

import numpy as np
import pandas as pd
import pytest

from winnow import bundle as bundles
from winnow.core.config import load_config
from winnow.data.importers import movielens_small
from winnow.data.open_store import open_store
from winnow.features import OnlineFeatureState
from winnow.features.remap import changed_items, peers_moved
from winnow.serving.batch import batch_config
from winnow.serving.learned_ranker import FeatureFeed
from winnow.serving.runtime import Runtime
from winnow.serving.state import OnlineState

pytestmark = pytest.mark.realdata

TOML = """
[ranker]
per_source = 40
num_boost_round = 40
early_stopping_rounds = 10

[models.als]
iterations = 4
"""


def _part(events: pd.DataFrame, items: pd.DataFrame, lo: int, hi: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    ev = events[(events["timestamp"] >= lo) & (events["timestamp"] < hi)]
    return ev, items[items["item_id"].isin(ev["item_id"])]


def _with_rows(items: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """Items with a price beside the year (numeric attributes the ranker reads)."""
    out = items.copy()
    out["attributes"] = [{**a, "price": float(p)} for a, p in zip(out["attributes"], rng.uniform(1, 30, len(out)))]
    return out


def _users(ids: np.ndarray, rng: np.random.Generator) -> pd.DataFrame:
    """Profiles with a numeric attribute (binned into peer groups) and a categorical one."""
    return pd.DataFrame({"user_id": ids, "attributes": [
        {"age": int(a), "plan": str(p)} for a, p in zip(rng.integers(15, 70, len(ids)),
                                                       rng.choice(["free", "pro", "team"], len(ids)))]})


def _changed_rows(items: pd.DataFrame, users: pd.DataFrame, rng: np.random.Generator) -> tuple[pd.DataFrame,
                                                                                               pd.DataFrame]:
    """A retrain's world after catalog updates: 10% of the items get another price, 5% other
    genres; 20% of the users are older (so the age quantiles, i.e. the peer bins, move)."""
    items = items.copy()
    pick = rng.random(len(items)) < 0.10
    items["attributes"] = [{**a, "price": a["price"] * 1.5 + 1} if p else a for a, p in zip(items["attributes"], pick)]
    recat = rng.random(len(items)) < 0.05
    items["categories"] = [["Documentary"] if r else c for c, r in zip(items["categories"], recat)]
    users = users.copy()
    older = rng.random(len(users)) < 0.20
    users["attributes"] = [{**a, "age": a["age"] + 25} if o else a for a, o in zip(users["attributes"], older)]
    return items, users


@pytest.fixture(scope="module", params=["adds", "rows"])
def world(request, tmp_path_factory, ml_latest_small):
    """("adds": the challenger adds users and items; "rows": it also changes known items'
    prices and genres and moves the users' peer bins)."""
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    from winnow.training.job import train

    home = tmp_path_factory.mktemp(f"remap_mls_{request.param}")
    (home / "winnow.toml").write_text(TOML)
    cfg = load_config(home)
    imp = movielens_small.load(ml_latest_small)
    rng = np.random.default_rng(15)
    rows = request.param == "rows"
    all_items = _with_rows(imp.items, rng) if rows else imp.items
    ts = imp.events["timestamp"]
    t1, t2 = int(ts.quantile(0.8)), int(ts.quantile(0.9))
    store = open_store(cfg.store_url())
    ev1, it1 = _part(imp.events, all_items, int(ts.min()), t1)
    store.import_all(events=ev1, items=it1)
    users1 = _users(pd.unique(ev1["user_id"]), rng) if rows else None
    if rows:
        store.import_all(users=users1)
    champion = train(cfg, store, evaluate_models=False).version
    ev2, it2 = _part(imp.events, all_items, t1, t2)
    store.import_all(events=ev2, items=it2[~it2["item_id"].isin(it1["item_id"])])
    if rows:
        items1, users1 = _changed_rows(it1, users1, rng)
        new_users = pd.unique(ev2["user_id"][~ev2["user_id"].isin(users1["user_id"])])
        store.import_all(items=items1, users=pd.concat([users1, _users(new_users, rng)], ignore_index=True))
    challenger = train(cfg, store, evaluate_models=False, activate_bundle=False).version
    late = imp.events[imp.events["timestamp"] >= t2]
    yield cfg, store, champion, challenger, late, all_items, rows
    store.close()


def _load(cfg, version):
    return bundles.load_bundle(bundles.bundles_dir(cfg.home) / version)


def _ingest(store, feeds, frame: pd.DataFrame, items: pd.DataFrame) -> None:
    """What the service does with acknowledged events: durable first, then every serving feed."""
    new_items = items[items["item_id"].isin(frame["item_id"])]
    store.import_all(items=new_items[~new_items["item_id"].isin(store.read_items()["item_id"])])
    store.append_events(frame, source="request")
    for feed in feeds:
        feed.apply(frame)


def _replayed(cfg, rt: Runtime, store) -> OnlineFeatureState:
    fresh = FeatureFeed(OnlineFeatureState(rt.feature_feed.state.catalog, rt.feature_feed.state.spec),
                        rt.user_ids, rt.feature_feed.item_ids, cfg)
    fresh.replay(store.read_events())
    return fresh.state


def _assert_same_features(a: OnlineFeatureState, b: OnlineFeatureState, n_users: int, n_items: int,
                          t: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    users = np.r_[rng.choice(n_users, 60, replace=False), np.arange(n_users - 20, n_users), -1]
    for user in users.tolist():
        items = np.r_[rng.choice(n_items, 40, replace=False), np.arange(n_items - 10, n_items)]
        score = {s: rng.random(len(items)) for s in a.spec.sources}
        rank = {s: rng.permutation(len(items)).astype(np.float64) for s in a.spec.sources}
        fa = a.features(user, items, t, src_score=score, src_rank=rank)
        fb = b.features(user, items, t, src_score=score, src_rank=rank)
        np.testing.assert_allclose(fa, fb, rtol=1e-6, atol=1e-9, equal_nan=True, err_msg=f"user {user}")
        assert a.has_history(user) == b.has_history(user)


def _slates(rt: Runtime, store, cfg, users: list[str], now: float) -> list[list[int]]:
    state = OnlineState(store, cfg.events, history=cfg.online.history, capacity=1)
    reqs = [rt.request(u, state.get(u), k=20, now=now) for u in users]
    return [[s.item for s in slate.items] for slate in rt.pipeline.recommend_many(reqs)]


def test_swap_to_a_bigger_bundle_remaps_and_equals_a_replay(world, caplog) -> None:
    cfg, store, champion, challenger, late, items, rows = world
    cfg = batch_config(cfg)  # deterministic slates: no exploration, no experiments
    serving = Runtime.from_bundle(cfg, _load(cfg, champion), store)
    feed = serving.feature_feed
    assert feed is not None and len(feed.outside) > 0  # events of ids the champion never saw
    half = len(late) // 2
    _ingest(store, [feed], late.iloc[:half], items)  # between the loads: while the champion serves
    before = _replayed(cfg, serving, store)
    with caplog.at_level(logging.INFO, logger="winnow.serving.learned_ranker"):
        new = Runtime.from_bundle(cfg, _load(cfg, challenger), store, serving_feed=feed)
    assert any("remapped from the serving runtime" in r.getMessage() for r in caplog.records), caplog.text
    nfeed = new.feature_feed
    assert not nfeed.shared and nfeed.state is not feed.state
    n_old_u, n_old_i = len(serving.user_ids), len(feed.item_ids)
    n_u, n_i = len(new.user_ids), len(nfeed.item_ids)
    assert n_u > n_old_u and n_i > n_old_i  # the challenger adds users and items
    old_state, new_state = feed.state, nfeed.state  # ... and in the "rows" world changes known rows
    assert (len(changed_items(old_state.catalog, new_state.catalog)) > 100) == rows
    assert peers_moved(old_state.catalog, old_state.spec, new_state.catalog, new_state.spec) == rows
    t = float(store.read_events().timestamp.max()) + 60
    _assert_same_features(nfeed.state, _replayed(cfg, new, store), n_u, n_i, t, seed=1)
    _assert_same_features(feed.state, before, n_old_u, n_old_i, t, seed=2)  # the champion is untouched
    # both held at once (a rollout): later events reach both, each state stays a replay's equal
    _ingest(store, [feed, nfeed], late.iloc[half:], items)
    t = float(store.read_events().timestamp.max()) + 60
    _assert_same_features(nfeed.state, _replayed(cfg, new, store), n_u, n_i, t, seed=3)
    _assert_same_features(feed.state, _replayed(cfg, serving, store), n_old_u, n_old_i, t, seed=4)
    # what a request returns: the same slates as a runtime whose state was replayed
    replay_rt = Runtime.from_bundle(cfg, _load(cfg, challenger), store)
    assert replay_rt.feature_feed.state is not nfeed.state
    users = [str(u) for u in pd.unique(late["user_id"])[:40]] + new.user_ids.ids[:20] + new.user_ids.ids[-20:]
    got, want = _slates(new, store, cfg, users, t), _slates(replay_rt, store, cfg, users, t)
    assert got == want and sum(map(len, got)) > 0


def test_rollback_to_a_bundle_that_drops_ids_replays_and_says_why(world, caplog) -> None:
    cfg, store, champion, challenger, _, _, _ = world
    cfg = batch_config(cfg)
    serving = Runtime.from_bundle(cfg, _load(cfg, challenger), store)
    with caplog.at_level(logging.INFO, logger="winnow.serving.learned_ranker"):
        back = Runtime.from_bundle(cfg, _load(cfg, champion), store, serving_feed=serving.feature_feed)
    messages = [r.getMessage() for r in caplog.records]
    assert any("no remap (the new bundle drops or re-orders serving user ids" in m for m in messages), messages
    assert any("events replayed" in m for m in messages), messages
    t = float(store.read_events().timestamp.max()) + 60
    n_u, n_i = len(back.user_ids), len(back.feature_feed.item_ids)
    _assert_same_features(back.feature_feed.state, _replayed(cfg, back, store), n_u, n_i, t, seed=5)
