"""The tracker under load: many threads tracking at once against a real server (every event
stored once), and a server that never answers (track() keeps returning at once, the overflow
policy drops and counts, close() is bounded and counts what it leaves)."""

from __future__ import annotations

import threading
import time

import winnow_client as wc
from winnow_client import Client, RetryPolicy, TrackerOptions

from winnow.data.open_store import open_store


def test_eight_threads_tracking_at_once_lose_and_double_nothing(served):
    threads, per = 8, 2500
    opts = TrackerOptions(batch_size=500, flush_interval=0.1, max_queue=threads * per, overflow="block",
                          block_timeout=1.0)
    results: list[list[bool]] = [[] for _ in range(threads)]
    with Client(served.url, api_key=served.keys["write"], tracker=opts) as client:
        def produce(t: int) -> None:
            for i in range(per):
                results[t].append(client.track(f"load-u{t}", f"i{i % 100}", "view", event_id=f"load-{t}-{i}"))
        workers = [threading.Thread(target=produce, args=(t,)) for t in range(threads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join(120)
        assert client.flush(timeout=120)
        stats = client.tracker.stats()
    assert all(all(r) and len(r) == per for r in results)
    total = threads * per
    assert (stats.queued, stats.sent, stats.written, stats.dropped, stats.failed) == (total, total, total, 0, 0)
    store = open_store(served.config.store_url())
    try:
        counts = [len(store.user_events(f"load-u{t}", limit=10 * per)) for t in range(threads)]
    finally:
        store.close()
    assert counts == [per] * threads


def test_a_hung_server_never_blocks_track_past_the_policy(silent_server):
    opts = TrackerOptions(batch_size=10, flush_interval=0.01, max_queue=50, overflow="drop",
                          send_timeout=0.2, retry=RetryPolicy(max_attempts=1000, backoff=0.01, max_backoff=0.05))
    client = Client(silent_server, tracker=opts)
    took = []
    for i in range(500):
        t0 = time.perf_counter()
        client.track("u1", "i1", "view", event_id=f"hung-{i}")
        took.append(time.perf_counter() - t0)
    stats = client.tracker.stats()
    # 500 calls: 50 fit the queue, at most one batch of 10 left it for the hung send; the rest dropped
    assert stats.queued + stats.dropped == 500 and 50 <= stats.queued <= 60 and stats.sent == 0
    assert max(took) < 0.5  # "drop": a full queue answers at once (bound is loose for a loaded machine)
    t0 = time.monotonic()
    client.close(timeout=0.5)
    assert time.monotonic() - t0 < 0.5 + opts.send_timeout + 2.0  # close() waits its timeout, one try at most
    after = client.tracker.stats()
    assert after.sent == 0 and after.pending == 0 and after.dropped == 500 - after.failed
    assert not client.tracker.track("u1", "i1", "view")  # closed: refused, counted
    assert client.tracker.stats().dropped == after.dropped + 1


def test_block_policy_waits_at_most_block_timeout(silent_server):
    opts = TrackerOptions(batch_size=1000, flush_interval=60, max_queue=5, overflow="block", block_timeout=0.2)
    client = Client(silent_server, tracker=opts)
    try:
        assert all(client.track("u1", "i1", "view") for _ in range(5))
        t0 = time.monotonic()
        assert client.track("u1", "i1", "view") is False  # full for the whole block_timeout: dropped
        waited = time.monotonic() - t0
        assert 0.2 <= waited < 2.0
        assert client.tracker.stats().dropped == 1
    finally:
        client.close(timeout=0.1)


def test_options_are_checked():
    for bad in ({"batch_size": 0}, {"overflow": "spill"}, {"flush_interval": 0}, {"block_timeout": -1}):
        try:
            TrackerOptions(**bad)  # type: ignore[arg-type]
        except ValueError as exc:
            assert "invalid" in str(exc)
        else:
            raise AssertionError(f"{bad} accepted")
    assert isinstance(wc.TrackerStats().pending, int)
