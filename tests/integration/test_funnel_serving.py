"""The learned ranker in the running service (in-process app): `winnow train` writes it into the
bundle, the pipeline's rank stage uses it for users with history, explain=true shows each
item's top feature contributions, and ingested events reach its online features at once."""

from __future__ import annotations

import numpy as np
import pytest
from fastapi.testclient import TestClient
from serve_harness import trained_home


TOML = """
[security]
auth = false  # not a test of access control

[ranker]
per_source = 60
num_boost_round = 80
early_stopping_rounds = 15

[models.als]
iterations = 5
"""


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory):
    cfg, world, info = trained_home(tmp_path_factory.mktemp("rankapi"), TOML, n_users=300, n_items=200,
                                    n_events=12_000, seed=5)
    assert (info.path / "ranker" / "ranker.txt").is_file(), info.manifest.get("ranker")
    from winnow.serving.app import create_app

    with TestClient(create_app(cfg)) as c:
        c.world = world  # type: ignore[attr-defined]
        c.info = info  # type: ignore[attr-defined]
        yield c


def test_bundle_manifest_reports_the_ranker(client) -> None:
    rep = client.info.manifest["ranker"]
    assert rep["best_iteration"] >= 1 and rep["train_lists"] > 0
    assert set(rep["sources"]) == {"als", "itemitem", "trending"}  # fresh has no retrieval model


def test_served_ranker_scores_known_users_and_explains(client) -> None:
    from winnow.serving.learned_ranker import LearnedRanker

    rt = client.app.state.service.runtime
    assert isinstance(rt.pipeline.ranker, LearnedRanker)
    assert rt.pipeline.ranker.model.compiled_ is not None  # lleaves-compiled trees serve
    user = str(client.world.events["user_id"].iloc[0])
    ranker = rt.pipeline.ranker
    seen: list[np.ndarray] = []
    original = ranker.score_request

    def spy(cands, request):
        out = original(cands, request)
        seen.append(out)
        return out

    ranker.score_request = spy
    try:
        body = client.get(f"/v1/users/{user}/recommendations", params={"k": 10, "explain": "true"}).json()
    finally:
        del ranker.score_request
    assert len(body["items"]) == 10
    assert len(seen) == 1 and seen[0] is not None
    names = set(rt.pipeline.ranker.model.spec.names)
    for it in body["items"]:
        feats = it["trace"]["rank_features"]
        assert 1 <= len(feats) <= 5 and {f["feature"] for f in feats} <= names
        assert abs(feats[0]["contribution"]) >= abs(feats[-1]["contribution"])
    # every served item's rank score is the learned model's score for it
    learned = set(np.asarray(seen[0], np.float32).tolist())
    assert all(np.float32(it["trace"]["rank_score"]) in learned for it in body["items"])


def test_cold_user_keeps_the_blend_and_events_feed_the_features(client) -> None:
    rt = client.app.state.service.runtime
    body = client.get("/v1/users/nobody-yet/recommendations", params={"k": 5, "explain": "true"}).json()
    assert len(body["items"]) == 5
    assert all("rank_features" not in it["trace"] for it in body["items"])
    state = rt.feature_feed.state
    user = str(client.world.events["user_id"].iloc[0])
    uidx = rt.user_ids.get(user)
    before = len(state._users[uidx].ts)
    item = str(client.world.items["item_id"].iloc[3])
    r = client.post("/v1/events", json={"events": [{"user_id": user, "item_id": item, "event_type": "click"}]})
    assert r.status_code == 200, r.text
    assert len(state._users[uidx].ts) == before + 1
