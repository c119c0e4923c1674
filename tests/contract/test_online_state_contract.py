"""One contract for every online-state backend: in-process (memory://) and Redis (a real
redis-server started by tests/servers/redis.py), both over a real embedded store.

What every backend must do: rebuild a user's record from the store (newest first, weights,
every purchase, full count), fold acknowledged events into it, share it between instances
("replicas") over the same store and backend, forget it on erasure, and never lose an event
that was acknowledged while another instance was rebuilding the record.
"""

from __future__ import annotations

import threading

import pandas as pd
import pytest
from servers.redis import followers_reading
from servers.throwaway import wait_for

from winnow.core.config import load_config
from winnow.core.errors import ConfigError
from winnow.data.open_store import open_store
from winnow.serving.online_redis import RedisOnlineState
from winnow.serving.state import OnlineState

HISTORY = 10


def events(rows):
    return pd.DataFrame([{"user_id": u, "item_id": i, "event_type": t, "value": float("nan"), "timestamp": ts,
                          "event_id": None, "context": None} for u, i, t, ts in rows])


@pytest.fixture(params=["memory", "redis"])
def world(request, tmp_path):
    """(config, store, make) where make() opens one more backend instance (a replica) over its
    own store connection; everything is closed at the end."""
    kind = request.param
    url = request.getfixturevalue("redis_url") if kind == "redis" else "memory://"
    cfg = load_config(tmp_path, overrides={"online": {"url": url, "history": HISTORY,
                                                      "op_timeout_ms": 2000}})
    store = open_store(cfg.store_url())
    opened = []

    def make():
        own = open_store(cfg.store_url())
        if kind == "redis":
            backend = RedisOnlineState(own, cfg.events, cfg.online)
        else:  # several processes over one store: records are validated against it per hit
            backend = OnlineState(own, cfg.events, history=HISTORY, shared=True)
        opened.append((backend, own))
        return backend

    yield cfg, store, make
    for backend, own in opened:
        backend.close()
        own.close()
    store.close()


def ingest(store, backend, rows):
    """What the service does: announce the users (``begin``), durable store write, then the
    online state."""
    frame = events(rows)
    backend.begin([str(u) for u in frame["user_id"]])
    store.append_events(frame)
    backend.apply(frame)


def test_unknown_user_has_no_record(world):
    _, _, make = world
    assert make().get("nobody") is None


def test_record_is_rebuilt_from_the_store(world):
    cfg, store, make = world
    store.append_events(events([("u1", "a", "view", 10), ("u1", "b", "purchase", 20), ("u2", "a", "view", 5)]))
    rec = make().get("u1")
    assert [r[0] for r in rec.recent] == ["b", "a"]  # newest first
    assert [r[1] for r in rec.recent] == ["purchase", "view"]
    assert rec.recent[0][2] == cfg.events.weights["purchase"] and rec.recent[1][2] == cfg.events.weights["view"]
    assert [r[3] for r in rec.recent] == [20, 10]
    assert rec.purchased == {"b"} and rec.event_count == 2 and rec.newest_timestamp == 20


def test_applied_events_change_the_record_and_its_revision(world):
    _, store, make = world
    backend = make()
    store.append_events(events([("u1", "a", "view", 10)]))
    before = backend.get("u1")
    rev = before.revision
    assert backend.get("u1").revision == rev  # unchanged content: same revision (fold-in cache hits)
    ingest(store, backend, [("u1", "c", "purchase", 30), ("u1", "d", "click", 25)])
    after = backend.get("u1")
    assert after.purchased == {"c"} and after.event_count == 3
    assert [r[0] for r in after.recent] == ["c", "d", "a"]  # applied in timestamp order, newest first
    assert after.revision != rev and after.newest_timestamp == 30


def test_events_of_an_unloaded_user_are_in_the_rebuilt_record(world):
    _, store, make = world
    backend = make()
    ingest(store, backend, [("u9", "x", "view", 1)])  # never read before: nothing loaded yet
    ingest(store, backend, [("u9", "y", "purchase", 2)])
    rec = backend.get("u9")
    assert [r[0] for r in rec.recent] == ["y", "x"] and rec.purchased == {"y"} and rec.event_count == 2


def test_history_is_capped_but_old_purchases_and_the_count_are_kept(world):
    _, store, make = world
    backend = make()
    rows = [("u1", "old", "purchase", 1)] + [("u1", f"i{t}", "view", 10 + t) for t in range(30)]
    store.append_events(events(rows))
    rec = backend.get("u1")
    assert len(rec.recent) == HISTORY and "old" not in [r[0] for r in rec.recent]
    assert rec.purchased == {"old"} and rec.event_count == 31
    ingest(store, backend, [("u1", f"n{t}", "view", 100 + t) for t in range(5)])
    rec = backend.get("u1")
    assert len(rec.recent) == HISTORY and rec.recent[0][0] == "n4" and rec.event_count == 36


def test_an_event_applied_by_one_replica_is_seen_by_another(world):
    _, store, make = world
    a, b = make(), make()
    store.append_events(events([("u1", "a", "view", 10)]))
    assert a.get("u1").purchased == set() and b.get("u1").purchased == set()  # both have it loaded
    ingest(store, a, [("u1", "a", "purchase", 20)])
    rec = b.get("u1")
    assert rec.purchased == {"a"} and rec.event_count == 2 and rec.recent[0][:2] == ("a", "purchase")


def test_forget_drops_the_record(world):
    _, store, make = world
    a, b = make(), make()
    store.append_events(events([("u1", "a", "view", 10)]))
    assert a.get("u1") is not None
    store.delete_user("u1")
    assert a.forget("u1") is True
    assert a.forget("u1") is False  # nothing held any more
    assert a.get("u1") is None and b.get("u1") is None  # rebuilt from the (erased) store


def test_events_acknowledged_during_rebuilds_are_never_lost(world):
    """Writers (store write, then apply) race with readers rebuilding the record on other
    instances; every acknowledged event must be in the final record."""
    _, store, make = world
    readers = [make(), make()]
    writer = make()
    n_batches, stop = 40, threading.Event()
    errors: list[BaseException] = []

    def read(backend):
        try:
            while not stop.is_set():
                backend.get("hot")
                if isinstance(backend, OnlineState):
                    backend.forget("hot")  # force a rebuild on every read
        except BaseException as exc:  # noqa: BLE001  (reported below)
            errors.append(exc)

    def evict(backend):  # redis: the shared record disappears now and then -> concurrent rebuilds
        try:
            while not stop.wait(0.002):
                backend.invalidate(["hot"])
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=read, args=(r,)) for r in readers]
    if isinstance(writer, RedisOnlineState):
        threads.append(threading.Thread(target=evict, args=(make(),)))
    for t in threads:
        t.start()
    try:
        for k in range(n_batches):
            ingest(store, writer, [("hot", f"i{k}", "purchase", 100 + k)])
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    assert not errors, errors
    for backend in (*readers, writer, make()):
        rec = backend.get("hot")
        assert rec.event_count == n_batches
        assert rec.purchased == {f"i{k}" for k in range(n_batches)}
        assert [r[0] for r in rec.recent] == [f"i{k}" for k in range(n_batches - 1, n_batches - 1 - HISTORY, -1)]


def test_an_event_acknowledged_between_store_read_and_publish_is_kept(world, monkeypatch):
    """Deterministic form of the race above: replica A reads the store, then (before A caches
    or publishes the record) replica B acknowledges an event; A's answer may miss it, but the
    record every replica reads next must hold it."""
    import winnow.serving.online_redis as online_redis
    import winnow.serving.state as state

    _, store, make = world
    a, b = make(), make()
    store.append_events(events([("u1", "a", "view", 10)]))
    real = state.record_from_store
    calls = []

    def slow_read(*args, **kwargs):
        rec = real(*args, **kwargs)
        if not calls:
            calls.append(1)
            ingest(store, b, [("u1", "late", "purchase", 20)])  # acknowledged meanwhile
        return rec

    monkeypatch.setattr(state, "record_from_store", slow_read)
    monkeypatch.setattr(online_redis, "record_from_store", slow_read)
    a.get("u1")
    assert calls, "the store read was never intercepted: the test proved nothing"
    monkeypatch.setattr(state, "record_from_store", real)
    monkeypatch.setattr(online_redis, "record_from_store", real)
    for backend in (a, b):
        rec = backend.get("u1")
        assert rec.purchased == {"late"} and rec.event_count == 2, (backend.name, rec)


def test_a_rebuild_between_a_store_write_and_its_apply_counts_the_event_once(world):
    """Deterministic form of the other side of the race: replica A rebuilds a record after
    replica B wrote an event to the store but before B applied it. A's answer holds the event;
    B's apply must not add it a second time to what every replica reads next (a shared record
    published from that snapshot would get it pushed again: Redis refuses to publish while a
    batch of the user is being written, ``begin`` .. ``apply``)."""
    _, store, make = world
    a, b = make(), make()
    store.append_events(events([("u1", "a", "view", 10)]))
    assert a.get("u1").event_count == 1  # loaded (Redis: published)
    a.forget("u1")  # ... and gone again (an erasure, an eviction): the next read rebuilds
    frame = events([("u1", "late", "purchase", 20)])
    b.begin(["u1"])
    store.append_events(frame)
    during = a.get("u1")  # the rebuild sees the store write
    assert during.event_count == 2 and during.purchased == {"late"}, during
    b.apply(frame)
    for backend in (a, b, make()):
        rec = backend.get("u1")
        assert rec.event_count == 2 and [r[0] for r in rec.recent] == ["late", "a"], (backend.name, rec)
    b.begin(["u1"])
    b.cancel(["u1"])  # a write that failed: publishing resumes at once
    a.forget("u1")
    assert a.get("u1").event_count == 2
    if isinstance(a, RedisOnlineState):
        assert a.memory_usage("u1") > 0, "not published again after cancel"


def test_redis_keys_expire_after_the_configured_ttl(redis_url, tmp_path):
    import redis

    cfg = load_config(tmp_path, overrides={"online": {"url": redis_url, "ttl_s": 120}})
    store = open_store(cfg.store_url())
    backend = RedisOnlineState(store, cfg.events, cfg.online)
    try:
        store.append_events(events([("u1", "a", "purchase", 10)]))
        backend.get("u1")
        client = redis.Redis.from_url(redis_url)
        ttls = [client.ttl(k) for k in backend.keys("u1")[:3]]
        assert all(0 < t <= 120 for t in ttls), ttls
        assert backend.memory_usage("u1") > 0
        client.close()
    finally:
        backend.close()
        store.close()


def test_redis_event_stream_reaches_the_other_replicas_only(redis_url, tmp_path):
    """Every batch one replica applies reaches the other replicas' followers (for their
    in-process ranker features), never its own."""
    from winnow.serving.online_state import _follower

    cfg = load_config(tmp_path, overrides={"online": {"url": redis_url}})
    store = open_store(cfg.store_url())
    a = RedisOnlineState(store, cfg.events, cfg.online)
    b = RedisOnlineState(store, cfg.events, cfg.online)
    got = {"a": [], "b": []}
    others = followers_reading(redis_url)
    fa = _follower(cfg, a, got["a"].append)
    fb = _follower(cfg, b, got["b"].append)
    try:
        # followers position themselves lazily (after the stream's newest entry): wait for both
        assert wait_for(lambda: len(followers_reading(redis_url) - others) >= 2, timeout=30, interval=0.02)
        batch = events([("u1", "x", "click", 10), ("u2", "y", "purchase", 11)])
        store.append_events(batch)
        a.apply(batch)
        assert wait_for(lambda: got["b"], timeout=30, interval=0.02)
        assert len(got["b"]) == 1, got
        frame = got["b"][0]
        assert frame["user_id"].tolist() == ["u1", "u2"] and frame["item_id"].tolist() == ["x", "y"]
        assert frame["event_type"].tolist() == ["click", "purchase"] and frame["timestamp"].tolist() == [10, 11]
        b.apply(events([("u3", "z", "view", 12)]))
        assert wait_for(lambda: got["a"], timeout=30, interval=0.02)
        assert [f["user_id"].tolist() for f in got["a"]] == [["u3"]]  # a never receives its own batch
        assert len(got["b"]) == 1
    finally:
        fa.close()
        fb.close()
        a.close()
        b.close()
        store.close()


@pytest.mark.parametrize("url, words", [
    ("redis://localhost:99999/0", "invalid port"), ("redis://localhost:6379/x", "database must be a number"),
    ("mysql://localhost/0", "scheme must be"), ("redis:///0", "no host"), ("memory://x", "exactly 'memory://'"),
])
def test_a_bad_online_url_fails_at_start_up_naming_the_field(tmp_path, url, words):
    with pytest.raises(ConfigError, match="online.url") as err:
        load_config(tmp_path, overrides={"online": {"url": url}})
    assert words in str(err.value)


def test_in_process_state_with_several_workers_needs_the_embedded_store(tmp_path, postgres_url):
    from winnow.serving.online_state import open_backend

    cfg = load_config(tmp_path, overrides={"store": {"url": postgres_url}, "serving": {"workers": 2}})
    store = open_store(cfg.store_url())
    try:
        with pytest.raises(ConfigError, match=r"\[online\] url"):
            open_backend(cfg, store)
        ok = load_config(tmp_path, overrides={"store": {"url": postgres_url}, "serving": {"workers": 1}})
        assert open_backend(ok, store).name == "memory"
    finally:
        store.close()
