"""Two-tower training on Ray Train: data-parallel workers (torch.distributed, gloo, CPU).

``fit_two_tower_ray(model, train, engine=...)`` fits ``model`` (a configured, unfitted
``TwoTowerRecommender`` with its side information) on ``train`` with ``engine.num_workers``
Ray Train workers and returns the fitted model, loaded from the checkpoint rank 0 wrote
(model.json + arrays.npz + weights.safetensors, the bundle format; no pickle).

Data parallelism, the DDP recipe: every worker builds the same network (same seed), trains on
its shard of the training events, and after each backward pass the gradients are averaged
over the workers (``all_reduce`` on the gloo process group Ray Train sets up; sparse
embedding gradients too) before the optimiser step, so all replicas take identical steps and
stay identical. The shards are disjoint row sets of equal size (a seeded permutation dealt
round-robin; at most ``workers - 1`` events are dropped) and each worker's batch is
``batch_size // workers`` events, so a global step sees ``batch_size`` events as locally.
A row's user history is read from the full event arrays, so every example keeps its whole
history. torch's ``DistributedDataParallel`` wrapper itself is not used because the two-tower
loop calls the towers directly (not ``forward``); the per-parameter gradient hooks below do
the same synchronisation. Validation (early stopping) runs on every worker over identical
weights, so every worker stops at the same epoch.

The "masked" objective draws a different number of steps per shard each epoch; it trains on
one Ray Train worker (no data parallelism; the result says so).
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from winnow.data.interactions import Interactions
from winnow.engine.ray_session import RaySession
from winnow.models.two_tower import TwoTowerRecommender


class ShardedEvents:
    """A worker's shard of ``EventArrays`` rows; histories come from the full arrays."""

    def __init__(self, full: Any, rows: np.ndarray) -> None:
        self.full, self.rows = full, np.asarray(rows, np.int64)
        self.user, self.item1 = full.user[self.rows], full.item1[self.rows]
        self.hour, self.dow = full.hour[self.rows], full.dow[self.rows]
        self.timestamp = full.timestamp[self.rows]
        self.start = full.start[self.rows]

    def __len__(self) -> int:
        return len(self.rows)

    def history(self, rows: np.ndarray, length: int, half_life: float) -> tuple[np.ndarray, np.ndarray]:
        return self.full.history(self.rows[rows], length, half_life)


def shard_rows(n: int, *, rank: int, world: int, seed: int) -> np.ndarray:
    """Rows of worker ``rank``: a seeded permutation of range(n) dealt round-robin, every shard
    of length n // world (identical on every worker given the seed)."""
    per = n // world
    perm = np.random.default_rng(seed).permutation(n)
    return np.sort(perm[rank::world][:per])


def _all_reduce_hook(world: int):
    import torch.distributed as dist

    def hook(p) -> None:
        if p.grad is None:
            return
        g = p.grad.coalesce() if p.grad.is_sparse else p.grad
        dist.all_reduce(g)
        p.grad = g / world
    return hook


class DataParallelTwoTower(TwoTowerRecommender):
    """``TwoTowerRecommender`` whose next-item training runs on one shard with averaged grads."""

    rank: int = 0
    world: int = 1

    def _settings(self):
        st = super()._settings()
        if self.world == 1:
            return st
        # each worker sees 1/world of every global batch, so 1/world of the events budget
        budget = None if st.max_events is None else max(1, st.max_events // self.world)
        return dataclasses.replace(st, batch_size=max(2, st.batch_size // self.world), max_events=budget)

    def _train(self, train: Interactions, tensors, *, validate=None, epochs: int | None = None):
        if self.world == 1 or self.config.objective != "next_item":
            return super()._train(train, tensors, validate=validate, epochs=epochs)
        from winnow.models.two_tower.train import EventArrays, train_epochs

        for p in self.net_.parameters():
            p.register_post_accumulate_grad_hook(_all_reduce_hook(self.world))
        events = EventArrays.build(train.user, train.item, train.timestamp)
        shard = ShardedEvents(events, shard_rows(len(events), rank=self.rank, world=self.world,
                                                 seed=self.config.seed))
        return train_epochs(self.net_, shard, tensors, np.bincount(train.item, minlength=train.n_items),
                            self._user_inputs, self._settings(), validate=validate, epochs=epochs)


def _worker(cfg: dict[str, Any]) -> None:
    """Ray Train loop: fit the shard, rank 0 reports the saved model as a checkpoint."""
    import ray
    import ray.train
    import torch

    ctx = ray.train.get_context()
    params, items, users, arrays, n_users, n_items, text = ray.get(cfg["data"][0])
    train = Interactions.from_arrays(arrays["user"], arrays["item"], weight=arrays["weight"],
                                     timestamp=arrays["timestamp"], n_users=n_users, n_items=n_items)
    model = DataParallelTwoTower(**params).with_side_info(items, users).with_text(text)
    model.rank, model.world = ctx.get_world_rank(), ctx.get_world_size()
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    model.fit(train)
    with tempfile.TemporaryDirectory() as tmp:
        metrics = {"best_epoch": model.history_.get("best_epoch", -1),
                   "fit_s": round(time.perf_counter() - t0, 3)}  # the worker's whole fit
        if model.rank == 0:
            model.save(tmp)
            ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(tmp))
        else:
            ray.train.report(metrics)


def fit_two_tower_ray(model: TwoTowerRecommender, train: Interactions, *,
                      engine: RaySession) -> tuple[TwoTowerRecommender, dict[str, Any]]:
    """(fitted model, report) -- see the module docstring."""
    import ray
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    params = model.get_params()
    workers = engine.num_workers if params.get("objective", "next_item") == "next_item" else 1
    arrays = {"user": train.user, "item": train.item, "weight": train.weight, "timestamp": train.timestamp}
    items, users = model.side_info()
    # the item text vectors the driver prepared (``prepare_text``), so workers do not encode again
    data = ray.put((params, items, users, arrays, train.n_users, train.n_items, model.prepared_text()))
    name = f"two-tower-{uuid.uuid4().hex[:8]}"
    trainer = TorchTrainer(
        _worker, train_loop_config={"data": [data]},
        torch_config=TorchConfig(backend="gloo"),
        scaling_config=ScalingConfig(num_workers=workers, use_gpu=False, resources_per_worker={"CPU": 1}),
        run_config=RunConfig(name=name, storage_path=str(engine.workdir / "ray_train")))
    result = trainer.fit()
    if result.error is not None:
        raise result.error
    if result.checkpoint is None:
        raise RuntimeError("Ray Train finished without a checkpoint from rank 0")
    try:
        with result.checkpoint.as_directory() as d:  # item vectors scored on Ray Data on load
            from winnow.engine.ray_batch import scored_two_tower

            fitted = scored_two_tower(engine).load(Path(d))
    finally:
        shutil.rmtree(engine.workdir / "ray_train" / name, ignore_errors=True)
    report = {"workers": workers, "data_parallel": workers > 1, **(result.metrics or {}),
              "item_vectors": {"engine": "ray", "seconds": round(fitted.scoring_s, 3)}}
    return fitted, report
