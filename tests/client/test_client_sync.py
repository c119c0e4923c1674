"""The blocking Client against a real `winnow serve`: every call of its surface, the errors as
their types with the server's message, configuration from the environment, timeouts."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime, timezone

import pytest
import winnow_client as wc
from winnow_client import Client, Event, Item, ItemPatch, RecContext, UserProfile


@pytest.fixture
def client(served) -> Iterator[Client]:
    with Client(served.url, api_key=served.keys["all"], timeout=30) as c:
        yield c


def test_health_and_readiness_need_no_key(served):
    with Client(served.url, api_key="") as c:
        assert c.health().status == "ok"
        ready = c.ready()
        assert ready.status == "ready" and ready.backends["store"] == "up" and ready.model_version


def test_recommendations_get_and_post_with_context(client):
    slate = client.recommend("u1", k=5)
    assert len(slate.items) == 5 and slate.request_id and slate.surface == "default"
    assert [it.position for it in slate.items] == list(range(5))
    excluded = slate.item_ids[:2]
    again = client.recommend("u1", k=5, surface="home", exclude=excluded, explain=True)
    assert again.surface == "home" and not set(excluded) & set(again.item_ids)
    assert all(it.trace is not None for it in again.items)  # explain=true: every item says why
    ctx = client.recommend("u1", k=4, context=RecContext(device="mobile", exclude=[again.item_ids[0]]))
    assert len(ctx.items) == 4 and again.item_ids[0] not in ctx.item_ids
    as_dict = client.recommend("u1", k=3, context={"locale": "en", "filters": {"categories": ["c1"]}})
    assert len(as_dict.items) <= 3


def test_similar_items(client):
    out = client.similar_items("i1", k=4)
    assert out.item_id == "i1" and 0 < len(out.items) <= 4 and "i1" not in [s.item_id for s in out.items]


def test_items_upsert_get_patch(client):
    assert client.upsert_items([Item(item_id="cl-item", title="Client item", categories=["c1"]),
                                {"item_id": "cl-item-2", "text": "from a dict"}]).written == 2
    got = client.get_item("cl-item")
    assert got.title == "Client item" and got.categories == ["c1"] and got.available
    assert client.patch_item("cl-item", ItemPatch(available=False)).written == 1
    assert client.get_item("cl-item").available is False


def test_users_put_get_delete(client):
    assert client.put_user("cl-user", UserProfile(attributes={"country": "NZ"}, interests=["c2"])).written == 1
    client.send_events([Event(user_id="cl-user", item_id="i3", event_type="click")])
    user = client.get_user("cl-user")
    assert user.attributes == {"country": "NZ"} and user.interests == ["c2"] and user.event_count >= 1
    erased = client.delete_user("cl-user")
    assert erased.user_id == "cl-user" and erased.erased.events >= 1 and erased.erased.profile
    with pytest.raises(wc.NotFoundError, match="cl-user"):
        client.get_user("cl-user")


def test_events_get_ids_so_a_resend_is_not_counted_twice(client):
    events = [Event(user_id="cl-ev", item_id="i1", event_type="click"),
              Event(user_id="cl-ev", item_id="i2", event_type="view", event_id="caller-id-1"),
              {"user_id": "cl-ev", "item_id": "i3", "event_type": "click",
               "timestamp": "2026-01-01T00:00:00Z"},
              Event(user_id="cl-ev", item_id="i4", event_type="click",
                    timestamp=datetime(2026, 1, 1, 1, tzinfo=timezone.utc))]
    rows = wc._calls.with_ids(events)
    assert rows[1]["event_id"] == "caller-id-1" and all(r["event_id"] for r in rows)
    assert rows[3]["timestamp"] == "2026-01-01T01:00:00+00:00"  # an aware datetime goes as RFC 3339
    first = client.send(wc._calls.send_events(rows))
    again = client.send(wc._calls.send_events(rows))  # a retry of the same batch: same ids
    assert (first.received, first.written) == (4, 4) and (again.received, again.written) == (4, 0)
    with pytest.raises(ValueError, match="no timezone"):
        Event(user_id="u", item_id="i", event_type="click", timestamp=datetime(2026, 1, 1))


def test_admin_bundles_activate_rollback(client):
    listing = client.bundles()
    assert listing.serving is not None and any(b.serving for b in listing.bundles)
    out = client.activate_bundle(listing.serving)
    assert out.serving == listing.serving and out.load_seconds >= 0
    with pytest.raises(wc.NotFoundError, match="unknown bundle version"):
        client.activate_bundle("20000101T000000Z-abcdef")
    assert len(listing.bundles) == 1  # one bundle ever active: nothing to roll back to
    with pytest.raises(wc.ConflictError, match="the running one keeps serving"):
        client.rollback_bundle()
    assert client.bundles().serving == listing.serving


def test_admin_drift_monitor(client):
    fresh = client.refresh_drift()  # recomputed now by the server's monitor process
    assert fresh.enabled and fresh.refreshes >= 1 and fresh.state == "ok", fresh
    assert fresh.report is not None and fresh.report["bundle"] == client.bundles().serving
    assert {r["name"] for r in fresh.report["data"]} >= {"event_mix", "item_popularity"}
    assert fresh.history and fresh.history[-1]["bundle"] == fresh.report["bundle"]
    assert client.drift().refreshes >= 1


def test_errors_are_typed_and_carry_the_server_message(served):
    with Client(served.url, api_key=None) as anon, pytest.raises(wc.AuthenticationError, match="missing API key") as e:
        anon.recommend("u1")
    assert e.value.status_code == 401 and e.value.path == "/v1/users/u1/recommendations"
    with Client(served.url, api_key=served.keys["read"]) as reader:
        with pytest.raises(wc.PermissionDeniedError) as denied:
            reader.send_events([Event(user_id="u1", item_id="i1", event_type="click")])
        assert denied.value.scope == "write" and "lacks scope 'write'" in denied.value.message
        with pytest.raises(wc.NotFoundError, match="unknown item id: 'nope'"):
            reader.get_item("nope")
    with Client(served.url, api_key=served.keys["write"]) as writer:
        with pytest.raises(wc.ValidationError) as bad:
            writer.send_events([Event(user_id="u1", item_id="i1", event_type="click"),
                                {"user_id": "u1", "item_id": "i1", "event_type": "click", "timestamp": "soon"},
                                {"user_id": "", "item_id": "i1", "event_type": "click"}])
        assert bad.value.rows == [1, 2] and "nothing was written" in bad.value.message
        assert {(f.row, f.field) for f in bad.value.errors} == {(1, "timestamp"), (2, "user_id")}
        assert next(f for f in bad.value.errors if f.row == 1).value == "soon"
        many = [Event(user_id="u1", item_id="i1", event_type="click") for _ in range(1001)]
        with pytest.raises(wc.PayloadTooLargeError, match="the limit is 1000"):
            writer.send_events(many)
    with pytest.raises(ValueError):
        Item(item_id="x", colour="red")  # type: ignore[call-arg]  # a typo fails before any call


def test_url_and_key_from_the_environment(served, monkeypatch):
    monkeypatch.setenv("WINNOW_URL", served.url + "/")
    monkeypatch.setenv("WINNOW_API_KEY", served.keys["read"])
    with Client() as c:
        assert c.base_url == served.url and len(c.recommend("u2", k=2).items) == 2
    with Client(api_key="wn_00000000_" + "x" * 43) as c, pytest.raises(wc.AuthenticationError, match="invalid"):
        c.recommend("u2")  # the argument wins over the environment


def test_timeouts_per_client_and_per_call(silent_server):
    # the client's timeout is long enough that the per-call one is told apart on a loaded machine
    with Client(silent_server, timeout=3.0, retry=wc.NO_RETRY) as c:
        t0 = time.monotonic()
        with pytest.raises(wc.TimeoutError, match="GET /healthz"):
            c.health()
        assert time.monotonic() - t0 >= 3.0
        t0 = time.monotonic()
        with pytest.raises(wc.TimeoutError):
            c.health(timeout=0.05)  # per call: shorter than the client's
        assert time.monotonic() - t0 < 2.5
        with pytest.raises(wc.TimeoutError):  # a read timeout is repeated for reads only: 3 tries
            c.send(wc._calls.health(), timeout=0.3, retry=wc.RetryPolicy(max_attempts=3, backoff=0.01))
        assert c.retried == 2
        with pytest.raises(wc.TimeoutError):  # rollback is not safe to repeat: 1 try
            c.send(wc._calls.rollback(), timeout=0.3, retry=wc.RetryPolicy(max_attempts=3, backoff=0.01))
        assert c.retried == 2
