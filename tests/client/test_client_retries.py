"""Retries: a server killed (SIGKILL) and restarted while the tracker sends, a response lost
after the server stored the batch, and 429 + Retry-After honoured; in every case each event is
stored exactly once (counted in the store afterwards)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import winnow_client as wc
from serve_harness import Server, make_home
from servers.throwaway import wait_for
from winnow_client import Client, Event, RetryPolicy, TrackerOptions

from winnow.core.config import load_config
from winnow.data.open_store import open_store
from conftest import make_keys

USERS = 10


def _stored_ids(home: Path, prefix: str) -> list[str]:
    store = open_store(load_config(home).store_url())
    try:
        return [e for u in range(USERS) for e in store.user_events(f"{prefix}-u{u}", limit=100_000)["event_id"]]
    finally:
        store.close()


@pytest.fixture(scope="module")
def own_home(tmp_path_factory) -> Iterator[tuple[Path, dict[str, str]]]:
    """A home of its own: these tests kill servers and restart them on it."""
    home = tmp_path_factory.mktemp("client-retries")
    make_home(home, n_users=60, n_items=80, n_events=1500, train=False)
    yield home, make_keys(load_config(home))


def test_tracker_survives_a_kill_and_restart_mid_batch(own_home):
    home, keys = own_home
    server = Server(home, auth=True, cli=True)
    n = 6000
    opts = TrackerOptions(batch_size=200, flush_interval=0.05, max_queue=n,
                          retry=RetryPolicy(max_attempts=200, backoff=0.05, max_backoff=0.5))
    client = Client(server.url, api_key=keys["write"], tracker=opts)
    accepted: list[bool] = []

    def produce() -> None:
        for i in range(n):
            accepted.append(client.track(f"kr-u{i % USERS}", f"i{i % 80}", "view", event_id=f"kr-{i}"))
            if i % 50 == 0:
                time.sleep(0.005)  # a steady stream, so batches are in flight when the server dies
    producer = threading.Thread(target=produce)
    try:
        producer.start()
        assert wait_for(lambda: client.tracker.stats().sent >= 1000, timeout=60), "1000 events acknowledged"
        server.kill9()
        assert wait_for(lambda: client.tracker.stats().retried >= 1, timeout=60), "a batch retried after the kill"
        server = Server(home, auth=True, cli=True, port=server.port)  # same address, new process
        producer.join(120)
        assert client.flush(timeout=120), client.tracker.stats()
        stats = client.tracker.stats()
    finally:
        producer.join(120)
        client.close()
        server.stop()
    assert all(accepted) and len(accepted) == n
    assert (stats.queued, stats.sent, stats.dropped, stats.failed) == (n, n, 0, 0), stats
    assert stats.retried >= 1 and stats.last_error is not None
    ids = _stored_ids(home, "kr")
    assert len(ids) == n and set(ids) == {f"kr-{i}" for i in range(n)}  # nothing lost, nothing doubled


class LoseResponses(httpx.BaseTransport):
    """Forwards each request to the real server, then drops the first ``lose`` answers (as a
    connection reset after the server acted)."""

    def __init__(self, lose: int) -> None:
        self.inner = httpx.HTTPTransport()
        self.lose = lose
        self.forwarded = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        response.read()
        self.forwarded += 1
        if self.lose > 0:
            self.lose -= 1
            raise httpx.ReadError("connection reset after the server answered", request=request)
        return response


def test_a_lost_answer_is_retried_and_the_events_stored_once(own_home):
    home, keys = own_home
    server = Server(home, auth=True, cli=True)
    transport = LoseResponses(lose=2)
    try:
        with Client(server.url, api_key=keys["write"], transport=transport,
                    retry=RetryPolicy(max_attempts=4, backoff=0.01)) as c:
            out = c.send_events([Event(user_id=f"lr-u{i % USERS}", item_id="i1", event_type="click")
                                 for i in range(50)])
            assert transport.forwarded == 3 and c.retried == 2
            assert (out.received, out.written) == (50, 0)  # the first try stored them; the repeats were skipped
            transport.lose = 1
            with pytest.raises(wc.TransportError):  # a rollback is not repeated after a lost answer
                c.rollback_bundle()
            assert transport.forwarded == 4
    finally:
        server.stop()
    assert len(_stored_ids(home, "lr")) == 50


def test_rate_limit_429_and_retry_after_are_honoured(own_home):
    home, keys = own_home
    server = Server(home, auth=True, cli=True, env={
        "WINNOW__RATE_LIMIT__ENABLED": "true", "WINNOW__RATE_LIMIT__REQUESTS_PER_S": "0.2",
        "WINNOW__RATE_LIMIT__REQUESTS_BURST": "2"})  # a token per 5 s: no refill between close calls
    try:
        with Client(server.url, api_key=keys["read"], retry=wc.NO_RETRY) as c:
            codes = []
            for _ in range(3):
                try:
                    c.similar_items("i1", k=2)
                    codes.append(200)
                except wc.RateLimitedError as exc:
                    codes.append(exc.status_code)
                    limited = exc
        assert codes == [200, 200, 429]
        assert 1.0 <= limited.retry_after <= 5.0 and "may send 0.2 requests/s" in limited.message
        with Client(server.url, api_key=keys["read"], retry=wc.NO_RETRY) as c:
            for _ in range(3):  # empty the bucket again (a refill may have landed meanwhile)
                try:
                    c.similar_items("i1", k=2)
                except wc.RateLimitedError:
                    break
        with Client(server.url, api_key=keys["read"], retry=RetryPolicy(max_attempts=3, backoff=0.01)) as c:
            t0 = time.monotonic()
            assert len(c.similar_items("i1", k=2).items) <= 2  # waited for the bucket, then answered
            assert c.retried >= 1 and time.monotonic() - t0 >= 1.0  # Retry-After (whole seconds) honoured
        with Client(server.url, api_key=keys["read"], retry=RetryPolicy(max_retry_after=0.5)) as c:
            with pytest.raises(wc.RateLimitedError):  # longer than the caller will wait: raised at once
                for _ in range(3):
                    c.similar_items("i1", k=2)
            assert c.retried == 0
        metrics = httpx.get(server.url + "/metrics", headers={"Authorization": f"Bearer {keys['admin']}"}).text
        assert 'winnow_rate_limited_total{key="' in metrics and 'kind="requests",scope="read"}' in metrics
    finally:
        server.stop()
