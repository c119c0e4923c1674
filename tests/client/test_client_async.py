"""AsyncClient against a real `winnow serve`: the same surface as Client, awaited, and its
tracker (an asyncio task) delivering every event exactly once."""

from __future__ import annotations

import asyncio
import inspect

import pytest
import winnow_client as wc
from winnow_client import AsyncClient, Client, Event, ItemPatch, TrackerOptions, UserProfile

from winnow.data.open_store import open_store


def test_same_public_surface_as_the_blocking_client():
    def surface(cls: type) -> dict[str, list[str]]:
        return {name: list(inspect.signature(fn).parameters) for name, fn in vars(cls).items()
                if callable(fn) and not name.startswith("_")}
    sync, aio = surface(Client), surface(AsyncClient)
    assert sync.pop("close") == aio.pop("aclose")
    assert sync == aio
    assert all(inspect.iscoroutinefunction(getattr(AsyncClient, n)) for n in aio)


def test_async_calls(served):
    async def run() -> None:
        async with AsyncClient(served.url, api_key=served.keys["all"], timeout=30) as c:
            assert (await c.health()).status == "ok"
            slate, similar = await asyncio.gather(c.recommend("u5", k=3, context={"device": "tv"}),
                                                  c.similar_items("i2", k=2))
            assert len(slate.items) == 3 and len(similar.items) <= 2
            assert (await c.upsert_items([{"item_id": "acl-1", "title": "async"}])).written == 1
            assert (await c.patch_item("acl-1", ItemPatch(sponsored=True))).written == 1
            assert (await c.get_item("acl-1")).sponsored is True
            assert (await c.put_user("acl-u", UserProfile(interests=["c1"]))).written == 1
            out = await c.send_events([Event(user_id="acl-u", item_id="i1", event_type="click")])
            assert (out.received, out.written) == (1, 1)
            assert (await c.get_user("acl-u")).event_count == 1
            assert (await c.delete_user("acl-u")).erased.events == 1
            assert (await c.bundles()).serving == (await c.ready()).model_version
            with pytest.raises(wc.NotFoundError):
                await c.get_item("nope-async")
    asyncio.run(run())


def test_async_tracker_delivers_every_event_once(served):
    n = 1234

    async def run() -> wc.TrackerStats:
        opts = TrackerOptions(batch_size=100, flush_interval=0.2)
        async with AsyncClient(served.url, api_key=served.keys["write"], tracker=opts) as c:
            for i in range(n):
                assert await c.track(f"atr-u{i % 7}", f"i{i % 50}", "view", event_id=f"atr-{i}")
            assert await c.flush(timeout=60)
            return c.tracker.stats()

    stats = asyncio.run(run())
    assert (stats.queued, stats.sent, stats.written, stats.dropped, stats.failed) == (n, n, n, 0, 0)
    store = open_store(served.config.store_url())
    try:
        ids = [e for u in range(7) for e in store.user_events(f"atr-u{u}", limit=10_000)["event_id"]]
    finally:
        store.close()
    assert sorted(ids) == sorted(f"atr-{i}" for i in range(n))
