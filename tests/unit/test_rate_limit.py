"""Per-key rate limits (serving/ratelimit.py): bucket arithmetic, figures resolved per scope and
key, 429 + Retry-After + metrics through the app (in process; the real-server test with the
client honouring Retry-After is tests/client/test_client_retries.py)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from winnow.core.config import load_config
from winnow.core.errors import ConfigError
from winnow.serving.app import create_app
from winnow.serving.ratelimit import TokenBucket


def test_bucket_admits_up_to_the_burst_then_names_the_wait():
    b = TokenBucket(rate=2.0, capacity=3.0, tokens=3.0, stamp=0.0)
    assert [b.take(1, 0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert b.take(1, 0.0) == pytest.approx(0.5)  # one token refills in 1/2 s
    assert b.take(1, 0.5) == 0.0
    assert b.take(10, 0.5) == pytest.approx(1.5)  # a charge above the burst waits for a full bucket
    assert b.take(10, 2.0) == 0.0 and b.tokens == pytest.approx(-7.0)  # ...then goes into debt
    assert b.take(1, 5.0) == pytest.approx(1.0)  # the debt is paid by waiting: -7 + 6 = -1, needs 1
    assert not b.idle(5.0) and b.idle(10.0)


def test_figures_resolve_default_then_scope_then_key(tmp_path):
    cfg = load_config(tmp_path, overrides={"rate_limit": {
        "requests_per_s": 10, "scopes": {"write": {"requests_per_s": 20, "events_per_s": 7}},
        "keys": {"0123abcd": {"events_per_s": 99}, "anonymous": {"requests_burst": 5}}}})
    rl = cfg.rate_limit
    assert rl.enabled is False  # off unless turned on
    assert rl.rates("ffffffff", "read").requests_per_s == 10
    assert rl.rates("ffffffff", "write").requests_per_s == 20 and rl.rates("ffffffff", "write").events_per_s == 7
    assert rl.rates("0123abcd", "write").events_per_s == 99 and rl.rates("0123abcd", "write").requests_per_s == 20
    assert rl.rates("anonymous", "read").requests_burst == 5
    with pytest.raises(ConfigError, match="not key ids"):
        load_config(tmp_path, overrides={"rate_limit": {"keys": {"alice": {"requests_per_s": 1}}}})
    with pytest.raises(ConfigError, match="rate_limit.scopes"):
        load_config(tmp_path, overrides={"rate_limit": {"scopes": {"reader": {"requests_per_s": 1}}}})


def test_app_answers_429_with_retry_after_and_counts_it(tmp_path):
    cfg = load_config(tmp_path, overrides={"security": {"auth": False}, "rate_limit": {
        # refill rates slow enough that no refill lands inside the test, however loaded the machine
        "enabled": True, "requests_per_s": 0.01, "requests_burst": 3, "events_per_s": 0.01, "events_burst": 10,
        "scopes": {"admin": {"requests_burst": 100}}}})
    app = create_app(cfg)
    with TestClient(app) as c:
        codes = [c.get("/v1/items/nope").status_code for _ in range(5)]
        assert codes == [404, 404, 404, 429, 429]
        r = c.get("/v1/items/nope")
        assert r.status_code == 429 and 90 <= int(r.headers["retry-after"]) <= 100  # 1 token at 0.01/s
        assert "key anonymous may send 0.01 requests/s (burst 3) to read-scope routes" in r.json()["detail"]
        assert c.get("/healthz").status_code == 200 and c.get("/readyz").status_code == 200  # never limited
        events = [{"user_id": "u1", "item_id": "i1", "event_type": "click", "event_id": f"e{i}"} for i in range(12)]
        assert c.post("/v1/events", json={"events": events}).status_code == 200  # 12 > burst: from a full bucket
        r = c.post("/v1/events", json={"events": events[:1]})
        assert r.status_code == 429 and "events/s" in r.json()["detail"] and int(r.headers["retry-after"]) >= 200
        metrics = c.get("/metrics").text
    assert 'winnow_rate_limited_total{key="anonymous",kind="requests",scope="read"} 3.0' in metrics
    assert 'winnow_rate_limited_total{key="anonymous",kind="events",scope="write"} 1.0' in metrics
