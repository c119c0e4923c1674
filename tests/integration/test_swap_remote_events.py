"""Other replicas' events (the Redis event stream) reach a remapped feature state exactly once.

One in-process server on a Redis online state; a second replica is simulated by its own
``RedisOnlineState`` on the same Redis and store, which acknowledges events the way a replica
does (durable in the store, then applied: the batch goes onto the stream). A swap to a bundle
whose feature-state inputs differ by digest but not by content remaps the serving state. Two
of the other replica's batches arrive around the remap: one while the fork holds the catch-up
lock (the follower receives it during the fork and must apply it after), one after the fork and
before the swap (the build is held open until the follower applied it to the serving state).
The new runtime's feature state must then hold each exactly once: equal to a replay of the
store, and the serving state too. Waits are on conditions with deadlines, never sleeps.
"""

from __future__ import annotations

import logging
import threading

import numpy as np
import pandas as pd
from fastapi.testclient import TestClient
from serve_harness import trained_home
from servers.redis import followers_reading
from servers.throwaway import wait_for
from test_swap_slow_build import _copy_bundle

from winnow.data.open_store import open_store
from winnow.features import OnlineFeatureState
from winnow.serving.learned_ranker import FeatureFeed
from winnow.serving.online_redis import RedisOnlineState
from winnow.serving.runtime import Runtime

TOML = """
[security]
auth = false  # not a test of access control

[online]
url = "{url}"

[ranker]
per_source = 40
num_boost_round = 30
early_stopping_rounds = 10

[models.als]
iterations = 3
"""


def _replica_events(svc) -> float:
    return svc.metrics.replica_events._value.get()


def _replayed(cfg, rt, store) -> OnlineFeatureState:
    feed = rt.feature_feed
    fresh = FeatureFeed(OnlineFeatureState(feed.state.catalog, feed.state.spec), rt.user_ids, feed.item_ids, cfg)
    fresh.replay(store.read_events())
    return fresh.state


def _same_state(a: OnlineFeatureState, b: OnlineFeatureState, users: list[int], n_items: int, t: float) -> None:
    rng = np.random.default_rng(3)
    for user in users:
        assert a._users[user].ts == b._users[user].ts, f"user {user}: event times differ"
        items = rng.choice(n_items, 30, replace=False)
        score = {s: rng.random(30) for s in a.spec.sources}
        rank = {s: rng.permutation(30).astype(np.float64) for s in a.spec.sources}
        np.testing.assert_allclose(a.features(user, items, t, src_score=score, src_rank=rank),
                                   b.features(user, items, t, src_score=score, src_rank=rank),
                                   rtol=1e-6, atol=1e-9, equal_nan=True, err_msg=f"user {user}")


def test_stream_events_around_a_remap_reach_the_new_state_once(tmp_path, redis_url, monkeypatch, caplog):
    from winnow.serving.app import create_app

    home = tmp_path / "home"
    home.mkdir()
    cfg, world, info = trained_home(home, TOML.format(url=redis_url), n_users=200, n_items=150, n_events=6_000,
                                    seed=9)
    other = _copy_bundle(home, info.version, new_spec_file=True)  # same content: the swap remaps
    users = [str(u) for u in world.events["user_id"].unique()[:2]]
    items = [str(i) for i in world.items["item_id"].iloc[:2]]
    t0 = int(world.events["timestamp"].max()) + 100
    store = open_store(cfg.store_url())
    replica = RedisOnlineState(store, cfg.events, cfg.online)

    def acknowledge(user: str, item: str, ts: int) -> None:
        """What another replica does with an event post: durable in the store, then applied."""
        frame = pd.DataFrame({"user_id": [user], "item_id": [item], "event_type": ["click"], "value": [np.nan],
                              "timestamp": [ts]})
        store.append_events(frame, source="request")
        replica.apply(frame)

    before = followers_reading(redis_url)
    with TestClient(create_app(cfg)) as client:
        svc = client.app.state.service
        assert wait_for(lambda: len(followers_reading(redis_url) - before) >= 1, timeout=30, interval=0.02)
        serving = svc.runtime
        assert serving.version == info.version and serving.feature_feed is not None
        seen = _replica_events(svc)
        snapshot = svc._catchup.snapshot

        def remap_with_a_batch_in_flight(fn):
            def during_fork():
                acknowledge(users[0], items[0], t0 + 1)  # the follower gets it while the lock is held
                assert wait_for(lambda: _replica_events(svc) > seen, timeout=30, interval=0.01)
                return fn()
            return snapshot(during_fork)

        monkeypatch.setattr(svc._catchup, "snapshot", remap_with_a_batch_in_flight)
        built, release = threading.Event(), threading.Event()
        original = Runtime.from_bundle

        def held(cls, *args, **kwargs):
            rt = original(*args, **kwargs)  # the remap (and its snapshot) happen in here
            built.set()
            if not release.wait(120):
                raise RuntimeError("the test never released the build")
            return rt

        monkeypatch.setattr(Runtime, "from_bundle", classmethod(held))
        result: dict = {}
        th = threading.Thread(target=lambda: result.setdefault(
            "r", client.post(f"/v1/admin/bundles/{other}/activate")))
        caplog.set_level(logging.INFO, logger="winnow.serving.learned_ranker")
        th.start()
        try:
            assert built.wait(120), "the build never finished its remap"
            uidx = serving.user_ids.get(users[1])
            acknowledge(users[1], items[1], t0 + 2)  # after the fork, before the swap
            assert wait_for(lambda: t0 + 2 in serving.feature_feed.state._users[uidx].ts, timeout=30, interval=0.01)
            assert svc.runtime is serving  # still the old runtime
        finally:
            release.set()
            th.join(120)
        assert result["r"].status_code == 200, result["r"].text
        assert any("remapped from the serving runtime" in r.getMessage() for r in caplog.records), caplog.text
        new = svc.runtime
        assert new.version == other and new.feature_feed.state is not serving.feature_feed.state
        idx = [new.user_ids.get(u) for u in users]
        for u, ts in zip(idx, (t0 + 1, t0 + 2), strict=True):
            assert new.feature_feed.state._users[u].ts.count(ts) == 1
        t = t0 + 600
        n_items = len(new.feature_feed.item_ids)
        some = sorted({*idx, *range(0, len(new.user_ids), 9)})
        _same_state(new.feature_feed.state, _replayed(cfg, new, store), some, n_items, t)
        _same_state(serving.feature_feed.state, _replayed(cfg, serving, store), some, n_items, t)
    replica.close()
    store.close()
