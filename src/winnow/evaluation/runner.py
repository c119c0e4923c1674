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

from winnow.core.config import WinnowConfig
from winnow.core.errors import ConfigError
from winnow.data.interactions import Dataset
from winnow.evaluation.metrics import evaluate_recs
from winnow.evaluation.splits import Split, make_split
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


def evaluate_split(split: Split, model_names: Sequence[str], config: WinnowConfig, *, k: int,
                   item_categories: Sequence[Sequence[object]] | None = None,
                   progress: Progress | None = None) -> list[dict[str, Any]]:
    """Fit each model on ``split.train`` and measure top-k on ``split.test``."""
    train_csr = split.train.to_csr()
    test_csr = split.test.to_csr(binary=True)
    warm = np.diff(train_csr.indptr) > 0
    users = np.flatnonzero((np.diff(test_csr.indptr) > 0) & warm)
    rows = []
    for name in model_names:
        model = build_model(name, config)
        t0 = time.perf_counter()
        model.fit(split.train)
        fit_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        recs, _ = model.recommend(users, k, exclude=train_csr)
        rec_s = time.perf_counter() - t0
        metrics = evaluate_recs(recs, test_csr, k=k, train=train_csr, users=users,
                                item_categories=item_categories)
        rows.append({"model": name, **metrics, "fit_seconds": fit_s,
                     "recommend_ms_per_user": 1000 * rec_s / max(len(users), 1)})
        if progress:
            progress(name)
    return rows


def evaluate_models(dataset: Dataset, model_names: Sequence[str], config: WinnowConfig, *,
                    protocol: str = "random", k: int = 10, seeds: Sequence[int] = (0,),
                    ratio: float | None = None, progress: Progress | None = None) -> EvaluationResult:
    """Run ``protocol`` with each seed and evaluate every model on the same splits."""
    if k < 1:
        raise ConfigError(f"k must be >= 1, got {k}")
    method, params = PROTOCOLS.get(protocol, (protocol, {}))
    result = EvaluationResult(dataset.name, protocol, {**params, **({"ratio": ratio} if ratio else {})}, k)
    cats = None
    if len(dataset.items) and "categories" in dataset.items:
        cats = [list(c) if isinstance(c, (list, tuple, np.ndarray)) else [] for c in dataset.items["categories"]]
    for seed in seeds:
        split = split_dataset(dataset, protocol, seed=seed, ratio=ratio)
        for row in evaluate_split(split, model_names, config, k=k, item_categories=cats,
                                  progress=(lambda m, s=seed: progress(f"seed {s}: {m}")) if progress else None):
            result.runs.append({"seed": seed, **row})
    return result
