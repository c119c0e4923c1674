"""Hot swap while the new runtime's build is slow and CPU-bound (in-process app).

The build of the new bundle is held open artificially: after the real ``Runtime.from_bundle``
(which replays the event log into the ranker's feature state, or remaps the serving one) it spins in Python until the
test releases it, holding the GIL between switch intervals the way the real build's Python
parts do. While it is known to be in progress, recommendations, event posts and readiness must
all be answered -- by the OLD runtime -- and events acknowledged meanwhile must reach the NEW
runtime's feature state at the swap (swap.CatchUp). The bound is behavioural: every request
completes before the build is released; nothing here measures time.
"""

from __future__ import annotations

import json
import logging
import shutil
import threading
import time

import pytest
from fastapi.testclient import TestClient
from serve_harness import trained_home

from winnow.bundle import active_version, bundles_dir, check_version, new_version, sha256_file
from winnow.features import OnlineFeatureState
from winnow.serving.learned_ranker import FeatureFeed
from winnow.serving.runtime import Runtime

TOML = """
[security]
auth = false  # not a test of access control

[ranker]
per_source = 60
num_boost_round = 60
early_stopping_rounds = 15

[models.als]
iterations = 5
"""


def _copy_bundle(home, src: str, *, new_spec_file: bool = False, half_life_s: float | None = None) -> str:
    """Another bundle: a byte copy of ``src`` under a new version name (the manifest's file
    checksums do not cover manifest.json, so only its "version" changes). ``new_spec_file``:
    ranker/ranker.json re-serialised (same content, other bytes, its checksum updated), so the
    copy's feature-state inputs differ by digest and a swap to it remaps the serving state (same
    id maps, catalog and spec values); ``half_life_s``: the feature spec's half-life changed too,
    so the folded state differs and a swap to it replays the event log."""
    dst = check_version(new_version())
    shutil.copytree(bundles_dir(home) / src, bundles_dir(home) / dst)
    mpath = bundles_dir(home) / dst / "manifest.json"
    manifest = json.loads(mpath.read_text())
    manifest["version"] = dst
    if new_spec_file or half_life_s is not None:
        spec = bundles_dir(home) / dst / "ranker" / "ranker.json"
        content = json.loads(spec.read_text())
        if half_life_s is not None:
            content["feature_spec"]["half_life_s"] = half_life_s
        spec.write_text(json.dumps(content, indent=3))
        manifest["files"]["ranker/ranker.json"] = sha256_file(spec)
    mpath.write_text(json.dumps(manifest))
    return dst


@pytest.fixture(scope="module")
def app_home(tmp_path_factory):
    home = tmp_path_factory.mktemp("slow_swap")
    cfg, world, info = trained_home(home, TOML, n_users=300, n_items=200, n_events=12_000, seed=5)
    assert (info.path / "ranker" / "ranker.txt").is_file(), info.manifest.get("ranker")
    return (home, cfg, world, info.version, _copy_bundle(home, info.version),
            _copy_bundle(home, info.version, new_spec_file=True),
            _copy_bundle(home, info.version, half_life_s=7 * 86_400.0))


@pytest.mark.parametrize("path", ["replay", "remap", "state-taken-over"])
def test_requests_are_served_by_the_old_runtime_while_a_slow_build_runs(app_home, monkeypatch, caplog, path):
    """The three ways a new runtime gets its ranker feature state: replayed from the event log
    plus the catch-up (another feature spec), the serving state forked at the catch-up's
    snapshot plus the catch-up (same id maps, catalog and spec values in other files), or the
    serving state taken over (identical inputs)."""
    home, cfg, world, first, same, other, replayed = app_home
    same_inputs = path == "state-taken-over"
    new = {"replay": replayed, "remap": other, "state-taken-over": same}[path]
    from winnow.serving.app import create_app

    building, release = threading.Event(), threading.Event()
    original = Runtime.from_bundle

    def slow(cls, *args, **kwargs):
        rt = original(*args, **kwargs)  # the real build, event-log replay included
        building.set()
        deadline = time.monotonic() + 300
        while not release.is_set():  # CPU-bound: holds the GIL except at switch intervals
            if time.monotonic() > deadline:
                raise RuntimeError("the test never released the build")
            sum(range(5000))
        return rt

    user = str(world.events["user_id"].iloc[0])
    items = [str(x) for x in world.items["item_id"].iloc[:6]]
    with TestClient(create_app(cfg)) as client:
        svc = client.app.state.service
        if svc.runtime.version != first:  # serve the bundle the others are copies of
            assert client.post(f"/v1/admin/bundles/{first}/activate").status_code == 200
        old_rt = svc.runtime
        old = old_rt.version
        assert old == first and old != new and old_rt.feature_feed is not None
        uidx = old_rt.user_ids.get(user)
        monkeypatch.setattr(Runtime, "from_bundle", classmethod(slow))
        result: dict = {}

        def activate() -> None:
            result["r"] = client.post(f"/v1/admin/bundles/{new}/activate")

        caplog.set_level(logging.INFO, logger="winnow.serving.learned_ranker")
        th = threading.Thread(target=activate)
        th.start()
        try:
            assert building.wait(120), "the build never started"
            served, posted = [], 0
            for i in range(12):
                r = client.get(f"/v1/users/{user if i % 2 else f'u{i}'}/recommendations", params={"k": 10})
                assert r.status_code == 200, r.text
                served.append(r.json()["model_version"])
                ev = {"user_id": user, "item_id": items[i % len(items)], "event_type": "click"}
                r = client.post("/v1/events", json={"events": [ev]})
                assert r.status_code == 200, r.text
                posted += 1
                assert client.get("/readyz").json()["model_version"] == old
            # all of the above completed while the build was still running
            assert th.is_alive() and not release.is_set() and "r" not in result
            assert served == [old] * 12
            assert svc.runtime is old_rt
        finally:
            release.set()
            th.join(120)
        r = result["r"]
        assert r.status_code == 200, r.text
        assert r.json()["serving"] == new and r.json()["previous"] == old
        said = {"replay": "events replayed", "remap": "remapped from the serving runtime",
                "state-taken-over": "taken over from the serving runtime"}[path]
        assert any(said in rec.getMessage() for rec in caplog.records), caplog.text
        assert client.get(f"/v1/users/{user}/recommendations").json()["model_version"] == new
        assert active_version(home) == new
        # events acknowledged during the build reached the NEW runtime's ranker features once
        new_rt = svc.runtime
        feed = new_rt.feature_feed
        assert new_rt is not old_rt and feed.shared is same_inputs
        assert (feed.state is old_rt.feature_feed.state) is same_inputs
        before = old_rt.feature_feed.state._users[uidx].ts
        after = feed.state._users[new_rt.user_ids.get(user)].ts
        assert after == before and posted == 12
        # ... exactly as a replay of the whole store gives it now
        fresh = FeatureFeed(OnlineFeatureState(feed.state.catalog, feed.state.spec), new_rt.user_ids,
                            feed.item_ids, cfg)
        fresh.replay(svc.store.read_events())
        assert fresh.state._users[new_rt.user_ids.get(user)].ts == after
        assert svc._catchup.pending is None


def test_a_build_failing_after_the_replay_stops_collecting_events(app_home, monkeypatch):
    home, cfg, world, old, same, _, new = app_home
    from winnow.core.errors import ConfigError
    from winnow.serving.app import create_app

    original = Runtime.from_bundle
    replayed = threading.Event()

    def failing(cls, *args, **kwargs):
        original(*args, **kwargs)  # replays the event log: the catch-up is collecting from here
        replayed.set()
        raise ConfigError("pipeline wiring refused (simulated)")

    with TestClient(create_app(cfg)) as client:
        svc = client.app.state.service
        serving = svc.runtime.version
        target = new if serving != new else old  # another feature spec: the build replays
        monkeypatch.setattr(Runtime, "from_bundle", classmethod(failing))
        r = client.post(f"/v1/admin/bundles/{target}/activate")
        assert replayed.is_set()
        assert r.status_code == 409 and "simulated" in r.json()["detail"]
        assert svc._catchup.pending is None
        ev = {"user_id": str(world.events["user_id"].iloc[1]), "item_id": str(world.items["item_id"].iloc[1]),
              "event_type": "click"}
        assert client.post("/v1/events", json={"events": [ev]}).status_code == 200
        assert svc._catchup.pending is None  # nothing accumulates for a runtime that will never serve
        assert client.get("/readyz").json()["model_version"] == serving
        assert active_version(home) == serving
