"""The offline stacked ranker (retrieval candidates + LightGBM ranker, training.stacked) end to
end on a small synthetic world, and batch-recommend's stacked path running it."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from winnow.core.config import load_config
from winnow.data.synthetic import generate_world
from winnow.data.training_data import dataset_from_frames
from winnow.metrics import evaluate_recs
from winnow.evaluation.splits import stratified_split
from winnow.training.batch import batch_recommend
from winnow.training.stacked import StackedRanker


@pytest.fixture(scope="module")
def world():
    cfg = load_config("/nonexistent-winnow-home", overrides={
        "ranker": {"per_source": 30, "inner_folds": 1, "num_boost_round": 60, "early_stopping_rounds": 10,
                   "cv_models": 3},  # the CV path (not the default) is what these tests cover
        "models": {"als": {"iterations": 5}}})
    w = generate_world(300, 150, 12_000, seed=3)
    ds = dataset_from_frames(w.events, w.items, w.users, cfg.events, name="world")
    return cfg, ds


@pytest.fixture(scope="module")
def fitted(world):
    cfg, ds = world
    split = stratified_split(ds.interactions, 0.75, seed=0)
    return cfg, ds, split, StackedRanker(ds, cfg).fit(split.train)


def test_stacked_ranker_ranks_candidates_and_excludes_training_items(fitted) -> None:
    _cfg, ds, split, funnel = fitted
    train = split.train.to_csr(binary=True)
    test = split.test.to_csr(binary=True)
    users = np.flatnonzero((np.diff(test.indptr) > 0) & (np.diff(train.indptr) > 0))
    recs, scores = funnel.recommend(users, 10, exclude=train)
    assert recs.shape == (len(users), 10)
    assert (recs >= 0).all()
    for row, u in zip(recs, users, strict=True):
        assert len(set(row.tolist())) == 10
        assert not set(row.tolist()) & set(train[u].indices.tolist())
    assert (np.diff(scores, axis=1) <= 0).all()
    rep = funnel.report_
    assert rep["train_lists"] > 0 and rep["valid_lists"] > 0 and rep["positives"] > 0
    assert {r["feature"] for r in rep["importance"]} <= set(funnel.ranker_.spec.names)
    # the learned ranker is really used: its order differs from every single source's
    for name, model in funnel.sources_.items():
        alone, _ = model.recommend(users, 10, exclude=train)
        assert not np.array_equal(alone, recs), name
    # and it is a sensible recommender on this world (far above random)
    ndcg = evaluate_recs(recs, test, k=10, users=users, train=train)["ndcg@10"]
    rand = np.random.default_rng(0).permuted(np.tile(np.arange(ds.interactions.n_items), (len(users), 1)), axis=1)
    rand = np.array([[i for i in r if i not in set(train[u].indices)][:10] for r, u in zip(rand, users, strict=True)])
    assert ndcg > 2 * evaluate_recs(rand, test, k=10, users=users, train=train)["ndcg@10"]


def test_candidates_restrict_the_stacked_ranker(fitted) -> None:
    _, _, _split, funnel = fitted
    allowed = np.arange(0, 150, 3)
    recs, _ = funnel.recommend(np.arange(20), 5, candidates=allowed)
    assert set(recs[recs >= 0].ravel().tolist()) <= set(allowed.tolist())


def test_stacked_batch_recommend_runs_the_stacked_ranker(world, tmp_path) -> None:
    cfg, ds = world
    out = tmp_path / "recs.csv"
    summary = batch_recommend(ds, cfg, k=5, out=out)
    assert summary.model == "stacked"
    with open(out, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert rows and set(rows[0]) == {"user_id", "item_id", "rank", "score"}
    assert len(rows) == 5 * summary.users


def test_batch_recommend_without_enough_data_falls_back_to_retrieval(world, tmp_path) -> None:
    cfg, _ds = world
    small = dataset_from_frames(ds_events_head(world), None, None, cfg.events, name="tiny")
    summary = batch_recommend(small, cfg, k=3, out=tmp_path / "tiny.csv")
    assert summary.model.startswith("ease") and "no ranker" in summary.model


def ds_events_head(world):
    w = generate_world(8, 20, 60, seed=1)
    return w.events


def test_cv_models_choose_the_tree_count_of_one_refit_ranker(fitted) -> None:
    _cfg, _ds, _split, funnel = fitted
    its = funnel.report_["cv_best_iterations"]
    assert len(its) == funnel.rcfg.cv_models == 3
    assert len(funnel.report_["cv_valid_ndcg@10"]) == 3
    # the kept ranker is refit on every list with the mean validated tree count, no early stop
    assert funnel.ranker_.best_iteration_ == max(1, round(float(np.mean(its))))
    assert funnel.ranker_.booster_.current_iteration() == funnel.ranker_.best_iteration_
    assert funnel.report_["train_lists"] > max(funnel.report_["valid_lists"], 0)
