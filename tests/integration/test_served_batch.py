"""Batch mode of the service (winnow.serving.batch) and batch-recommend on it, on a small world.

- ``Pipeline.recommend_many`` answers exactly what per-request ``recommend`` answers (items,
  scores, order) for requests the service would build, with the learned ranker in the bundle;
- a configured explore policy is off in batch mode (deterministic top-k), and the lists are the
  same whether one process or two answer them;
- ``winnow batch-recommend`` (default: the service's pipeline) writes the same CSV format as
  before (header, ranks from 1, at most k rows per user, no training item, warm users first),
  and its rows are the served funnel's lists, score for score.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from winnow.cli.app import app
from winnow.core.config import load_config
from winnow.data.importers import Imported
from winnow.data.synthetic import generate_world
from winnow.data.training_data import dataset_from_frames
from winnow.offline import fit_served
from winnow.serving.batch import ServedBatch, recommend_users

K = 7
EXPLORE = {"default": {"kind": "epsilon_greedy", "epsilon": 0.5, "pool": 20}}
RANKER = {"num_boost_round": 30, "max_lists": 400}


@pytest.fixture(scope="module")
def world() -> Imported:
    w = generate_world(250, 160, 9_000, seed=21)
    return Imported(source="world", events=w.events, items=w.items, users=w.users)


@pytest.fixture(scope="module")
def served(world: Imported, tmp_path_factory: pytest.TempPathFactory):
    cfg = load_config(tmp_path_factory.mktemp("cfg"), environ={},
                      overrides={"ranker": RANKER, "pipeline": {"explore": EXPLORE}})
    return fit_served(world, cfg, tmp_path_factory.mktemp("served"))


def _users(world: Imported, n: int) -> list[str]:
    return sorted(world.events["user_id"].astype(str).unique())[:n]


def test_recommend_many_equals_per_request_recommend(served, world: Imported) -> None:
    batch = ServedBatch(served.config)
    try:
        assert type(batch.runtime.pipeline.ranker).__name__ == "LearnedRanker"  # the bundle's ranker serves
        users = _users(world, 60)
        seen = world.events.groupby("user_id")["item_id"].apply(lambda s: sorted(set(map(str, s))))
        exclude = [seen[u][:3] for u in users]
        many = batch.runtime.pipeline.recommend_many(
            batch.requests(users, k=K, now=served.now, exclude=exclude))
        for user, ex, slate in zip(users, exclude, many, strict=True):
            rec = batch.state.get(user)
            one = batch.runtime.pipeline.recommend(batch.runtime.request(user, rec, k=K, now=served.now, exclude=ex))
            assert [(s.item, s.score, s.position) for s in slate.items] == \
                   [(s.item, s.score, s.position) for s in one.items]
            assert len(slate.items) == K and slate.policy == "deterministic"
            ex_idx = set(batch.runtime.catalog.item_ids.encode(ex).tolist())
            assert not ex_idx & {s.item for s in slate.items}
            assert [s.position for s in slate.items] == list(range(K))
    finally:
        batch.close()


def test_explore_is_off_and_workers_do_not_change_the_lists(served, world: Imported) -> None:
    users = _users(world, 90)
    one = recommend_users(served.config, users, k=K, now=served.now, workers=1)
    two = recommend_users(served.config, users, k=K, now=served.now, workers=2, chunk=40)
    assert [(a.user_id, a.items, a.scores) for a in one] == [(a.user_id, a.items, a.scores) for a in two]
    assert [a.user_id for a in one] == users


def test_allowed_items_restrict_every_list(served, world: Imported) -> None:
    users = _users(world, 50)
    allowed = sorted(world.items["item_id"].astype(str))[::4]  # a quarter of the catalog
    lists = served.recommend(users, k=K, allowed=allowed)
    assert all(set(a.items) <= set(allowed) for a in lists)
    assert sum(len(a.items) for a in lists) >= len(users) * K // 2  # restricted, not emptied
    full = {a.user_id: a for a in served.recommend(users, k=K)}
    assert any(full[a.user_id].items != a.items for a in lists)  # the restriction changed something


def test_batch_recommend_cli_runs_the_served_pipeline(world: Imported, tmp_path: Path) -> None:
    d = tmp_path
    world.events.to_csv(d / "events.csv", index=False)
    items = world.items.copy()
    items["categories"] = items["categories"].map(lambda c: "|".join(c))
    items[["item_id", "title", "categories"]].to_csv(d / "items.csv", index=False)
    home = d / "home"
    home.mkdir()
    (home / "winnow.toml").write_text("[ranker]\nnum_boost_round = 30\nmax_lists = 400\n"
                                      "[pipeline.explore.default]\nkind = \"epsilon_greedy\"\nepsilon = 0.5\n")
    out = d / "recs.csv"
    res = CliRunner().invoke(app, ["--home", str(home), "batch-recommend", "--train", str(d / "events.csv"),
                                   "--items", str(d / "items.csv"), "--k", str(K), "--out", str(out)])
    assert res.exit_code == 0, res.output + repr(res.exception)
    assert "with pipeline" in res.output
    with open(out, newline="") as fh:
        header = next(csv.reader(fh))
    assert header == ["user_id", "item_id", "rank", "score"]
    with open(out, newline="") as fh:
        rows = list(csv.DictReader(fh))
    by_user: dict[str, list[tuple[str, int, float]]] = {}
    for r in rows:
        by_user.setdefault(r["user_id"], []).append((r["item_id"], int(r["rank"]), float(r["score"])))
    cfg = load_config(home, environ={})
    ds = dataset_from_frames(world.events, world.items, None, cfg.events, "world")
    expected_order = [str(u) for u in ds.user_ids.decode(np.unique(ds.interactions.user))]
    assert list(by_user) == expected_order  # every user with events, in index order
    seen = world.events.groupby("user_id")["item_id"].apply(lambda s: set(map(str, s)))
    for user, recs in by_user.items():
        assert [r[1] for r in recs] == list(range(1, len(recs) + 1)) and 1 <= len(recs) <= K
        assert not {r[0] for r in recs} & seen[user]  # training items never recommended
    # the rows are the served funnel's lists: the same files through the same importer, fitted
    # with the same config in another scratch home, answered through winnow.serving.batch
    from winnow.data.importers.generic import load

    again = fit_served(load(events=d / "events.csv", items=d / "items.csv"), cfg, d / "again")
    users = expected_order[:40]
    lists = again.recommend(users, k=K, exclude=[sorted(seen[u]) for u in users])
    for answer in lists:
        assert [r[0] for r in by_user[answer.user_id]] == answer.items
        assert [r[2] for r in by_user[answer.user_id]] == pytest.approx(answer.scores, rel=1e-5)
