"""Grid search of a retrieval model's hyper-parameters on validation data carved from train ONLY.

The caller's ``train`` is split again (``winnow.evaluation.splits.validation_split``,
per-user stratified, seeded); every grid point is fitted on the inner fit part and scored on the
inner validation part with the fit part's items excluded. The caller's test data is never seen,
so the chosen parameters can be reported on test without leakage.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from winnow.core.errors import ConfigError
from winnow.data.interactions import Interactions
from winnow.evaluation.splits import validation_split
from winnow.metrics import evaluate_recs
from winnow.models.base import Recommender
from winnow.models.registry import model_class

METRICS = ("ndcg", "precision", "recall", "map", "map_min", "hit_rate", "mrr")


@dataclass(frozen=True)
class Trial:
    """One grid point: its full parameters, validation metrics (metric@k -> value), fit time."""

    params: dict[str, Any]
    metrics: dict[str, float]
    fit_seconds: float


@dataclass(frozen=True)
class TuneResult:
    """Outcome of ``tune``: the best parameters by ``metric``@``k`` on validation, and every trial.

    ``best_params`` are complete constructor parameters (base parameters plus the grid point);
    ``protocol`` describes the validation split (method, ratio, seed, sizes).
    """

    model_name: str
    metric: str
    k: int
    best_params: dict[str, Any]
    best_score: float
    trials: list[Trial] = field(default_factory=list)
    protocol: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def grid_points(grid: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """Cartesian product of ``grid`` (key order kept); an empty grid gives one empty point."""
    for key, values in grid.items():
        if not isinstance(values, list | tuple) or len(values) == 0:
            raise ConfigError(f"grid[{key!r}] must be a non-empty list, got {values!r}")
    keys = list(grid)
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*grid.values())]


def evaluate_model(model: Recommender, fit_part: Interactions, holdout: Interactions, *,
                   k: int) -> dict[str, float]:
    """Metrics@k of a fitted model on ``holdout`` users, items of ``fit_part`` excluded."""
    users = np.unique(holdout.user).astype(np.int64)
    recs, _ = model.recommend(users, k, exclude=fit_part.to_csr())
    return evaluate_recs(recs, holdout, k=k, users=users, train=fit_part)


def tune(model_name: str, train: Interactions, *, grid: dict[str, list[Any]], k: int = 10,
         seed: int = 0, metric: str = "ndcg", base_params: dict[str, Any] | None = None,
         fit_ratio: float = 0.8) -> TuneResult:
    """Grid-search ``model_name`` on a validation split of ``train``.

    Args:
        model_name: a registry name ("als", "bpr", "ease", "itemitem", ...).
        train: the training part of an outer split; test data must not be in it.
        grid: parameter name -> candidate values; names must be constructor parameters.
        k: cut-off of the validation metric.
        seed: seeds the validation split and, if the model has a ``seed`` parameter not fixed
            by ``base_params``/``grid``, the model.
        metric: one of METRICS (ndcg, precision, recall, map, ...), maximised.
        base_params: parameters shared by every grid point (default: the class defaults).
        fit_ratio: per-user share of ``train`` pairs kept for fitting; the rest is validation.
    Raises:
        ConfigError: unknown model, metric or parameter name, or an empty grid value list.
    """
    cls = model_class(model_name)
    if metric not in METRICS:
        raise ConfigError(f"unknown tuning metric {metric!r}; valid: {', '.join(METRICS)}")
    defaults = cls().get_params()
    params0 = dict(defaults)
    if "seed" in params0:
        params0["seed"] = seed
    params0.update(base_params or {})
    unknown = sorted((set(grid) | set(base_params or {})) - set(defaults))
    if unknown:
        raise ConfigError(f"{model_name} has no parameter(s) {unknown}; valid: {sorted(defaults)}")
    points = grid_points(grid)

    split = validation_split(train, "stratified", ratio=fit_ratio, seed=seed)
    key = f"{metric}@{k}"
    trials: list[Trial] = []
    for point in points:
        params = {**params0, **point}
        model = cls(**params)
        t0 = time.perf_counter()
        model.fit(split.train)
        fit_s = time.perf_counter() - t0
        trials.append(Trial(params, evaluate_model(model, split.train, split.test, k=k), fit_s))
    best = max(range(len(trials)), key=lambda i: (trials[i].metrics[key], -i))  # ties: first
    protocol = {"method": "stratified", "fit_ratio": fit_ratio, "seed": seed,
                "fit_pairs": len(split.train), "validation_pairs": len(split.test),
                "validation_users": int(len(np.unique(split.test.user)))}
    return TuneResult(model_name, metric, k, trials[best].params, trials[best].metrics[key],
                      trials, protocol)
