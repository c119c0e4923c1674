"""Two `winnow serve` replicas (two processes, two ports) against ONE PostgreSQL store and ONE
Redis, both real servers: they behave as one service.

- an event posted to replica A changes the next slate from replica B (a purchase disappears);
- activating and rolling back a bundle through A's admin API reaches B (bundles live in one
  shared directory, every replica follows its ACTIVE pointer);
- both answer /readyz with the same model version.
"""

from __future__ import annotations

import httpx
import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families
from serve_harness import Server, make_home, write_replica_config
from servers.redis import followers_reading
from servers.throwaway import wait_for

from winnow.core.config import load_config
from winnow.data.open_store import open_store
from winnow.training.job import train


@pytest.fixture(scope="module")
def replicas(tmp_path_factory, postgres_server, redis_server):
    home = tmp_path_factory.mktemp("replicas")
    pg_url = postgres_server.create_database() + "?pool_timeout=2&connect_timeout=2"
    write_replica_config(home, store_url=pg_url, redis_url=redis_server.url)
    cfg = make_home(home, n_users=120, n_items=250, n_events=6000)
    others = followers_reading(redis_server.url)
    a = Server(home)
    try:
        b = Server(home)
    except BaseException:
        a.stop()
        raise
    try:
        # each replica's event follower positions itself on the Redis stream lazily: a batch
        # appended before that would never reach it (the tests below count what B receives)
        assert wait_for(lambda: len(followers_reading(redis_server.url) - others) >= 2, timeout=60), \
            "the replicas' event followers never started reading the stream"
        yield home, cfg, a, b, redis_server
    finally:
        a.stop()
        b.stop()


def slate(server: Server, user: str, k: int = 10) -> dict:
    r = httpx.get(f"{server.url}/v1/users/{user}/recommendations", params={"k": k}, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


def test_both_replicas_are_ready_on_the_same_bundle(replicas):
    _, cfg, a, b, _ = replicas
    assert cfg.store_url().startswith("postgresql://") and cfg.online.url.startswith("redis://")
    ra, rb = (httpx.get(s.url + "/readyz", timeout=10) for s in (a, b))
    assert ra.status_code == rb.status_code == 200
    assert ra.json()["model_version"] == rb.json()["model_version"] is not None
    assert ra.json()["mode"] == rb.json()["mode"] == "bundle"


def test_a_purchase_posted_to_a_disappears_from_bs_next_slate(replicas):
    _, cfg, a, b, redis_server = replicas
    client = redis.Redis.from_url(redis_server.url)
    try:
        fed_a, fed_b = (replica_events(s) for s in (a, b))
        for user in ("u1", "u2", "u3"):
            top = slate(b, user)["items"][0]["item_id"]
            slate(a, user)  # both replicas have used (and published) the user's record
            before = httpx.get(f"{b.url}/v1/users/{user}", timeout=10).json()["event_count"]
            r = httpx.post(f"{a.url}/v1/events", json={"events": [
                {"user_id": user, "item_id": top, "event_type": "purchase"}]}, timeout=10)
            assert r.status_code == 200 and r.json()["written"] == 1, r.text
            out = slate(b, user)
            assert top not in [it["item_id"] for it in out["items"]]
            assert out["fallback"] is None, out["fallbacks"]  # served from Redis, not degraded
            assert httpx.get(f"{b.url}/v1/users/{user}", timeout=10).json()["event_count"] == before + 1
            # the record B used lives in Redis (B never received the event itself)
            prefix = cfg.online.key_prefix
            assert client.sismember(f"{prefix}u:{user}:pur", top)
        # B's in-process ranker features received A's events over the Redis stream; A skips its own
        wait_for(lambda: replica_events(b) >= fed_b + 3, timeout=60, interval=0.1)
        assert replica_events(b) == fed_b + 3 and replica_events(a) == fed_a
    finally:
        client.close()


def replica_events(server: Server) -> float:
    text = httpx.get(server.url + "/metrics", timeout=10).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "winnow_replica_events_total":
                return sample.value
    raise AssertionError("winnow_replica_events_total missing from /metrics")


def wait_version(server: Server, version: str, timeout: float = 60.0) -> str:
    """The version ``server`` serves once it is ``version``, or the last one seen at the deadline."""
    seen: list[str | None] = [None]

    def check() -> bool:
        seen[0] = httpx.get(server.url + "/readyz", timeout=10).json()["model_version"]
        return seen[0] == version

    wait_for(check, timeout=timeout, interval=0.1)
    return seen[0]


def test_activation_and_rollback_through_a_reach_b(replicas):
    home, cfg, a, b, _ = replicas
    v1 = httpx.get(a.url + "/readyz", timeout=10).json()["model_version"]
    store = open_store(load_config(home).store_url())
    try:
        v2 = train(cfg, store, evaluate_models=False, activate_bundle=False).version
    finally:
        store.close()
    assert v2 != v1
    r = httpx.post(f"{a.url}/v1/admin/bundles/{v2}/activate", timeout=120)
    assert r.status_code == 200 and r.json()["serving"] == v2, r.text
    assert wait_version(b, v2) == v2
    assert slate(b, "u5")["model_version"] == v2
    r = httpx.post(f"{a.url}/v1/admin/bundles/rollback", timeout=120)
    assert r.status_code == 200 and r.json()["serving"] == v1, r.text
    assert wait_version(b, v1) == v1
    listed = httpx.get(f"{b.url}/v1/admin/bundles", timeout=10).json()
    assert listed["active"] == v1 and listed["serving"] == v1
