"""The explore stage inside the pipeline, and A/B assignment + exposure logging in the service."""

from __future__ import annotations

import os
from collections import Counter

import numpy as np
import pytest
from servers.throwaway import wait_for

from winnow.core.config import PipelineConfig, SourceConfig, load_config
from winnow.core.errors import ConfigError
from winnow.core.ids import IdMap
from winnow.components import ServeContext, build_pipeline
from winnow.pipeline.types import Catalog, Request, UserView

N = 30
NOW = 2_000_000_000


def _pipeline(explore):
    cat = Catalog(IdMap("item", [f"i{i}" for i in range(N)]), category=np.zeros(N, np.int32),
                  category_names=["a"], available=np.ones(N, bool), sponsored=np.zeros(N, bool),
                  created_at=np.full(N, -1, np.int64), popularity=np.arange(N, 0, -1).astype(np.float32),
                  trending=np.arange(N, 0, -1).astype(np.float32))
    cfg = PipelineConfig(sources=[SourceConfig(name="popularity", kind="popularity", quota=N)],
                         cold_start_sources=["popularity"], backfill_source="popularity", min_candidates=10,
                         max_candidates=N, rules=["exclude"], explore=explore)
    return build_pipeline(cfg, ServeContext(cat))


def test_pipeline_explore_stage_logs_exact_propensities():
    pipe = _pipeline({"home": {"kind": "epsilon_greedy", "epsilon": 0.5, "pool": 10}})
    req = Request(UserView("u"), 4, NOW, surface="home", request_id="req-1")
    slate = pipe.recommend(req)
    assert slate.policy == "epsilon_greedy" and slate.n_ranked == N
    for s in slate.items:
        assert s.propensity == pytest.approx(0.5 if s.rank == s.position else 0.5 / 6)
        assert s.item == s.rank  # popularity order: item i has rank i
    again = pipe.recommend(Request(UserView("u"), 4, NOW, surface="home", request_id="req-1"))
    assert [s.item for s in again.items] == [s.item for s in slate.items]  # replayable
    first = Counter(pipe.recommend(Request(UserView("u"), 4, NOW, surface="home", request_id=f"r{i}")).items[0].item
                    for i in range(2000))
    assert first[0] / 2000 == pytest.approx(0.5, abs=0.04)
    other = pipe.recommend(Request(UserView("u"), 4, NOW, surface="search", request_id="req-1"))
    assert other.policy == "deterministic"
    assert [(s.rank, s.propensity) for s in other.items] == [(0, 1.0), (1, 1.0), (2, 1.0), (3, 1.0)]


def test_pipeline_explore_config_fails_at_start_up():
    with pytest.raises(ConfigError, match="pipeline.explore.home"):
        _pipeline({"home": {"kind": "epsilon_greedy", "epsilon": 2.0}})
    with pytest.raises(ConfigError, match="needs a UTC offset"):
        load_config("/tmp/winnow-explore-test", environ={}, overrides={"experiments": [
            {"name": "x", "start": "2026-01-01T00:00:00",
             "variants": [{"name": "a", "traffic": 0.5}, {"name": "b", "traffic": 0.5}]}]})


@pytest.fixture(scope="module")
def served_home(tmp_path_factory):
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    from winnow.data.open_store import open_store
    from winnow.data.synthetic import generate_world
    from winnow.training.job import train

    home = tmp_path_factory.mktemp("explore_serving")
    (home / "winnow.toml").write_text(
        '[security]\nauth = false\n'
        '[pipeline.explore.home]\nkind = "epsilon_greedy"\nepsilon = 0.3\npool = 40\n'
        '[[experiments]]\nname = "div"\nsalt = "s"\nstart = 2020-01-01T00:00:00Z\n'
        '[[experiments.variants]]\nname = "control"\ntraffic = 0.5\n'
        '[[experiments.variants]]\nname = "strict"\ntraffic = 0.5\n'
        'overrides = { max_consecutive_per_category = 1 }\n')
    cfg = load_config(home, environ={})
    world = generate_world(100, 200, 3000, seed=7)
    store = open_store(cfg.store_url())
    try:
        store.import_all(events=world.events, items=world.items, users=world.users)
        train(cfg, store)
    finally:
        store.close()
    return cfg, world


def test_service_names_variant_and_logs_exposure_and_propensities(served_home):
    from fastapi.testclient import TestClient

    from winnow.data.open_store import open_store
    from winnow.evaluation.ab import experiment_frame
    from winnow.evaluation.ope import log_from_impressions
    from winnow.serving.app import create_app

    cfg, world = served_home
    exp = cfg.experiment("div")
    users = world.users["user_id"].tolist()[:40]
    bodies = {}
    app = create_app(cfg)
    with TestClient(app) as client:
        rt = app.state.service.runtime
        assert rt.pipeline_for({"div": "strict"}).config.max_consecutive_per_category == 1
        assert rt.pipeline_for({"div": "control"}) is rt.pipeline
        for u in users:
            r = client.get(f"/v1/users/{u}/recommendations", params={"k": 5, "surface": "home"})
            assert r.status_code == 200, r.text
            bodies[u] = r.json()
        assert app.state.service.impressions.flush()
    assert {u: b["experiments"]["div"] for u, b in bodies.items()} == {u: exp.variant_of(u) for u in users}
    props = [it["propensity"] for b in bodies.values() for it in b["items"]]
    assert set(np.round(props, 9)) <= {0.7, round(0.3 / 35, 9)}
    store = open_store(cfg.store_url())
    try:
        imps = wait_for(lambda: (lambda got: got if len(got) >= len(users) else None)(store.read_impressions()),
                        interval=0.05)
        assert imps, "the served slates were not all in the impression log within 30 s"
        by_req = {i["request_id"]: i for i in imps}
        for u, b in bodies.items():
            logged = by_req[b["request_id"]]
            assert logged["context"]["experiments"] == {"div": b["experiments"]["div"]}
            assert logged["context"]["explore"] == "epsilon_greedy" and logged["context"]["n_ranked"] >= 5
            assert [x["propensity"] for x in logged["items"]] == [it["propensity"] for it in b["items"]]
            assert all(x["rank"] >= 0 for x in logged["items"])
        log = log_from_impressions(store.impression_outcomes(), imps, {"kind": "deterministic"})
        assert len(np.unique(log.unit)) == len(users)
        w = log.weights
        assert set(np.round(w, 6)) <= {0.0, round(1 / 0.7, 6)}  # the service's log supports greedy OPE
        frame = experiment_frame(store, exp)
        assert dict(zip(frame["user_id"], frame["variant"])) == {u: b["experiments"]["div"] for u, b in bodies.items()}
    finally:
        store.close()
