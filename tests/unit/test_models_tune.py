"""Validation-only tuning: picks the best grid point without touching test data."""

from __future__ import annotations

import numpy as np
import pytest

from winnow.core.errors import ConfigError
from winnow.data.interactions import Interactions
from winnow.training.tune import grid_points, tune


def _two_groups(n_users: int = 200, seed: int = 0) -> Interactions:
    rng = np.random.default_rng(seed)
    users, items = [], []
    for u in range(n_users):
        pool = np.arange(15) if u % 2 == 0 else np.arange(15, 30)
        chosen = rng.choice(pool, 8, replace=False)
        users += [u] * 8
        items += chosen.tolist()
    return Interactions.from_arrays(np.array(users), np.array(items), n_users=n_users, n_items=30)


def test_grid_points() -> None:
    assert grid_points({"a": [1, 2], "b": ["x"]}) == [{"a": 1, "b": "x"}, {"a": 2, "b": "x"}]
    assert grid_points({}) == [{}]
    with pytest.raises(ConfigError, match="grid\\['a'\\] must be a non-empty list"):
        grid_points({"a": []})


def test_tune_prefers_the_model_that_fits_the_world() -> None:
    # neighbours=1 keeps one similar item per item: clearly worse than 10 on this world
    res = tune("itemitem", _two_groups(), grid={"neighbours": [1, 10]}, k=5, seed=1)
    assert res.best_params["neighbours"] == 10
    assert len(res.trials) == 2
    scores = [t.metrics["ndcg@5"] for t in res.trials]
    assert res.best_score == max(scores) and scores[0] < scores[1]
    assert res.protocol["validation_pairs"] > 0 and res.protocol["fit_ratio"] == 0.8


def test_tune_never_sees_data_outside_train() -> None:
    train = _two_groups()
    res = tune("ease", train, grid={"l2": [1.0]}, k=5)
    # validation is carved from train: fit + validation pairs == train pairs (no duplicates here)
    assert res.protocol["fit_pairs"] + res.protocol["validation_pairs"] == len(train)


def test_tune_errors() -> None:
    train = _two_groups(20)
    with pytest.raises(ConfigError, match="has no parameter"):
        tune("ease", train, grid={"lambda": [1.0]})
    with pytest.raises(ConfigError, match="unknown tuning metric"):
        tune("ease", train, grid={"l2": [1.0]}, metric="auc")
    with pytest.raises(ConfigError, match="unknown model"):
        tune("svd", train, grid={})
