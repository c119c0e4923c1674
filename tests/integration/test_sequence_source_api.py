"""The time-neighbour ("watched this, then watched") source in the running service: `winnow
train` fits the sequence model when a pipeline source has kind "sequence", the served ranker
reads its score as a feature, and a user's fresh events steer its candidates at once."""

from __future__ import annotations

import numpy as np
import pytest
from fastapi.testclient import TestClient
from serve_harness import trained_home


TOML = """
[security]
auth = false  # not a test of access control

[ranker]
per_source = 40
num_boost_round = 40
early_stopping_rounds = 10

[models.als]
iterations = 3

[models.sequence]
window = 5
neighbours = 50

[pipeline]
cold_start_sources = ["popularity"]
rules = ["exclude"]
min_candidates = 20

[[pipeline.sources]]
name = "als"
kind = "als"
quota = 50

[[pipeline.sources]]
name = "next"
kind = "sequence"
quota = 50
weight = 0.8
"""


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory):
    cfg, _, info = trained_home(tmp_path_factory.mktemp("seqapi"), TOML, n_users=250, n_items=150,
                                n_events=8_000, seed=11)
    from winnow.serving.app import create_app

    with TestClient(create_app(cfg)) as c:
        assert c.app.state.service.runtime.version == info.version  # the bundle serves, no fallback
        c.info = info  # type: ignore[attr-defined]
        yield c


def test_bundle_holds_the_model_and_the_ranker_reads_it(client) -> None:
    assert "sequence" in client.info.manifest["models"]
    assert (client.info.path / "models" / "sequence" / "model.json").is_file()
    assert client.info.manifest["ranker"]["sources"] == {"als": "als", "next": "sequence"}
    names = client.app.state.service.runtime.pipeline.ranker.model.spec.names
    assert {"src_next_score", "src_next_rank"} <= set(names), names


def test_fresh_events_steer_the_sequence_candidates(client) -> None:
    rt = client.app.state.service.runtime
    model = rt.pipeline.sources["next"].scorer
    from winnow.models.registry import load_model

    seq = load_model(client.info.path / "models" / "sequence")
    rows = np.diff(seq.similarity_.indptr)
    anchor = int(np.argmax(rows))  # the item with the most time-neighbours
    anchor_id = rt.catalog.item_ids.to_list()[anchor]
    neighbours = set(seq.similarity_[anchor].indices.tolist())
    r = client.post("/v1/events", json={"events": [{"user_id": "fresh-user", "item_id": anchor_id,
                                                     "event_type": "click"}]})
    assert r.status_code == 200, r.text
    body = client.get("/v1/users/fresh-user/recommendations", params={"k": 20, "explain": "true"}).json()
    from_next = [it["item_id"] for it in body["items"] if "next" in it["sources"]]
    assert from_next, body["items"]
    ids = rt.catalog.item_ids
    assert {ids.index(i) for i in from_next} <= neighbours
    # the source answers from the live history: the scorer on [anchor] gives the same items
    items, _ = model(np.array([anchor]), np.ones(1, np.float32), 50)
    assert {ids.index(i) for i in from_next} <= set(items.tolist())
    assert anchor_id not in [it["item_id"] for it in body["items"]]  # the history is excluded
