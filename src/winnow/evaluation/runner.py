"""Offline evaluation: split a dataset, fit each model on train, score top-k on test.

Protocols (names used by the CLI):
- ``random``: per-user random stratified split (``ratio`` train share, default 0.75), seeded.
- ``temporal``: one global time cutoff at the ``quantile`` of timestamps (default 0.8).
- ``leave-last``: each user's last ``n`` interactions (default 1) are the test set.
Training items are always excluded from recommendations. Only users with >= 1 test item AND
>= 1 training item are evaluated (a user unseen in training is a cold-start case, evaluated
by the cold-start protocols instead); ``n_users`` in each row says how many were.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from winnow.core.config import WinnowConfig
from winnow.core.errors import ConfigError
from winnow.data.interactions import Dataset
from winnow.evaluation.splits import Split, make_split
from winnow.metrics import evaluate_recs
from winnow.models.base import Recommender
from winnow.models.registry import build_model

PROTOCOLS: dict[str, tuple[str, dict[str, Any]]] = {
    "random": ("stratified", {"ratio": 0.75}),
    "temporal": ("temporal", {"quantile": 0.8}),
    "leave-last": ("leave_last", {"n": 1}),
}

Progress = Callable[[str], None]  # called after each model is evaluated


@dataclass
class EvaluationResult:
    """One row per (model, seed) in ``runs``; ``summary`` averages over seeds (mean, std)."""

    dataset: str
    protocol: str
    params: dict[str, Any]
    k: int
    runs: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> list[dict[str, Any]]:
        """Per model: every numeric metric's mean over seeds, plus ``<metric>_std``."""
        out = []
        for model in dict.fromkeys(r["model"] for r in self.runs):
            rows = [r for r in self.runs if r["model"] == model]
            agg: dict[str, Any] = {"model": model, "seeds": len(rows)}
            for key, value in rows[0].items():
                if key in ("model", "seed") or not isinstance(value, (int, float)):
                    continue
                vals = np.array([r[key] for r in rows], dtype=np.float64)
                agg[key] = float(vals.mean())
                if len(rows) > 1:
                    agg[f"{key}_std"] = float(vals.std(ddof=1))
            out.append(agg)
        return out

    def to_json(self) -> dict[str, Any]:
        return {"dataset": self.dataset, "protocol": self.protocol, "params": self.params,
                "k": self.k, "summary": self.summary(), "runs": self.runs}


def split_dataset(dataset: Dataset, protocol: str, *, seed: int, ratio: float | None = None) -> Split:
    """Apply a named protocol to the dataset's interactions."""
    try:
        method, params = PROTOCOLS[protocol]
    except KeyError:
        raise ConfigError(f"unknown protocol {protocol!r}; use one of {sorted(PROTOCOLS)}") from None
    params = dict(params)
    if ratio is not None:
        if method == "stratified":
            params["ratio"] = ratio
        elif method == "temporal":
            params["quantile"] = ratio
        else:
            raise ConfigError(f"--ratio does not apply to protocol {protocol!r}")
    if method != "temporal":
        params["seed"] = seed
    return make_split(dataset.interactions, method, **params)


@dataclass
class FittedRun:
    """One model fitted on a split, with its top-k lists for the evaluated users."""

    model_name: str
    model: Recommender
    users: np.ndarray         # int64 [n] evaluated users (>= 1 train and >= 1 test item)
    train_csr: sp.csr_matrix  # users x items training weights (the exclusions)
    test_csr: sp.csr_matrix   # users x items binary relevance
    recs: np.ndarray          # int32 [n, k] item indices, -1 padded
    fit_seconds: float
    recommend_seconds: float

    def metrics(self, *, k: int, item_categories: Sequence[Sequence[object]] | None = None) -> dict[str, Any]:
        """The runner's metric row: every metric of ``evaluate_recs`` plus timings."""
        row = evaluate_recs(self.recs, self.test_csr, k=k, train=self.train_csr, users=self.users,
                            item_categories=item_categories)
        return {"model": self.model_name, **row, "fit_seconds": self.fit_seconds,
                "recommend_ms_per_user": 1000 * self.recommend_seconds / max(len(self.users), 1)}


def fit_and_recommend(split: Split, name: str, config: WinnowConfig, *, k: int) -> FittedRun:
    """Fit model ``name`` on ``split.train``; top-k (training items excluded) for warm test users."""
    train_csr = split.train.to_csr()
    test_csr = split.test.to_csr(binary=True)
    users = np.flatnonzero((np.diff(test_csr.indptr) > 0) & (np.diff(train_csr.indptr) > 0))
    model = build_model(name, config)
    t0 = time.perf_counter()
    model.fit(split.train)
    fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    recs, _ = model.recommend(users, k, exclude=train_csr)
    return FittedRun(name, model, users, train_csr, test_csr, recs, fit_s, time.perf_counter() - t0)


def evaluate_split(split: Split, model_names: Sequence[str], config: WinnowConfig, *, k: int,
                   item_categories: Sequence[Sequence[object]] | None = None,
                   progress: Progress | None = None) -> list[dict[str, Any]]:
    """Fit each model on ``split.train`` and measure top-k on ``split.test``."""
    rows = []
    for name in model_names:
        rows.append(fit_and_recommend(split, name, config, k=k).metrics(k=k, item_categories=item_categories))
        if progress:
            progress(name)
    return rows


def item_category_lists(dataset: Dataset) -> list[list[object]] | None:
    """Per item index, its category labels (for intra-list diversity); None without a catalog."""
    if not len(dataset.items) or "categories" not in dataset.items:
        return None
    return [list(c) if isinstance(c, (list, tuple, np.ndarray)) else [] for c in dataset.items["categories"]]


def _with_seed(progress: Progress | None, seed: int) -> Progress | None:
    """``progress`` with each message prefixed by the seed."""
    if progress is None:
        return None
    say = progress
    return lambda message: say(f"seed {seed}: {message}")


def evaluate_models(dataset: Dataset, model_names: Sequence[str], config: WinnowConfig, *,
                    protocol: str = "random", k: int = 10, seeds: Sequence[int] = (0,),
                    ratio: float | None = None, progress: Progress | None = None) -> EvaluationResult:
    """Run ``protocol`` with each seed and evaluate every model on the same splits."""
    if k < 1:
        raise ConfigError(f"k must be >= 1, got {k}")
    result = EvaluationResult(dataset.name, protocol, {}, k)
    cats = item_category_lists(dataset)
    for seed in seeds:
        split = split_dataset(dataset, protocol, seed=seed, ratio=ratio)
        result.params = {key: v for key, v in split.params.items() if key != "seed"}
        for row in evaluate_split(split, model_names, config, k=k, item_categories=cats,
                                  progress=_with_seed(progress, seed)):
            result.runs.append({"seed": seed, **row})
    return result
