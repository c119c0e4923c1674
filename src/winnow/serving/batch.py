"""Batch mode of the service: the active bundle's Pipeline answering many users at once, offline.

What `winnow serve` answers per request, for a list of users: the same ``Runtime.from_bundle``
object graph (the pipeline's sources, the learned ranker with its live feature state, rules,
backfill), the same online-state records (rebuilt from the store, as the service rebuilds a
user it has not seen since start-up), the same request (``Runtime.request``) and the pipeline's
batched entry point ``Pipeline.recommend_many``, which runs the per-request code unchanged.
``winnow batch-recommend`` and the README's offline funnel figure (bench/funnel.py) both come
from here (winnow.batch.served).

Differences from the service, on purpose:
- exploration is off: every surface is the deterministic top-k (``batch_config``), so a batch
  is reproducible and equals per-request ``recommend`` with the same config;
- nothing is written: no impression is logged, no metric, no online state;
- a user's profile is read from the store only when the pipeline has a cold-start source that
  needs one (as the service does);
- the users may be split over ``workers`` processes (spawned, not forked: each loads the bundle
  itself, ~1-3 s, so no LightGBM/OpenMP or SQLite state crosses a fork); the lists are the same
  for any number of workers, in the order of the users given.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from winnow import bundle as bundles
from winnow.core.config import WinnowConfig
from winnow.core.errors import BundleError
from winnow.data.open_store import open_store
from winnow.data.store import Store
from winnow.pipeline.types import Request, Slate
from winnow.serving.runtime import Runtime
from winnow.serving.state import OnlineState

CHUNK = 256  # users per task handed to a worker process


@dataclass(frozen=True)
class UserList:
    """One user's batch answer: external item ids best first, their scores, the fallbacks taken."""

    user_id: str
    items: list[str]
    scores: list[float]
    fallbacks: list[str]


def batch_config(config: WinnowConfig) -> WinnowConfig:
    """``config`` with exploration off on every surface (deterministic top-k) and no A/B
    experiments (every user gets the default pipeline): batch mode's only config changes."""
    pipeline = config.pipeline.model_copy(update={"explore": {}})
    return config.model_copy(update={"pipeline": pipeline, "experiments": []})


class ServedBatch:
    """The active bundle of ``config.home`` loaded as the service loads it, answering users in batch.

    Raises BundleError when the home has no active bundle (batch mode never falls back to the
    service's no-bundle popularity: a batch needs a trained bundle).
    """

    def __init__(self, config: WinnowConfig, *, store: Store | None = None) -> None:
        self.config = batch_config(config)
        self._own_store = store is None
        self.store = store if store is not None else open_store(self.config.store_url())
        try:
            version = bundles.active_version(self.config.home)
            if version is None:
                raise BundleError(f"no active bundle under {bundles.bundles_dir(self.config.home)}: "
                                  "run `winnow train` first")
            self.runtime = Runtime.from_bundle(self.config, bundles.load_bundle(
                bundles.bundles_dir(self.config.home) / version), self.store)
            self.state = OnlineState(self.store, self.config.events, history=self.config.online.history,
                                     capacity=1)  # each user is read once: nothing worth caching
        except BaseException:
            self.close()
            raise

    def requests(self, user_ids: Sequence[str], *, k: int, now: float,
                 exclude: Sequence[Sequence[str]] | None = None,
                 blocked: np.ndarray | None = None) -> list[Request]:
        """One request per user, built as the service builds it (``Runtime.request``).
        ``exclude[i]``: item ids user i must not get (e.g. their training items); ``blocked``:
        item indices of this bundle no user may get (added to every request's exclude)."""
        rt = self.runtime
        out = []
        for i, user_id in enumerate(user_ids):
            rec = self.state.get(user_id)
            profile = self.store.get_user(user_id) if rt.needs_profile else None
            req = rt.request(user_id, rec, k=k, now=now, profile=profile,
                             exclude=list(exclude[i]) if exclude is not None else None)
            if blocked is not None and len(blocked):
                req.exclude = np.union1d(req.exclude, blocked).astype(np.int32)
            out.append(req)
        return out

    def recommend(self, user_ids: Sequence[str], *, k: int, now: float,
                  exclude: Sequence[Sequence[str]] | None = None,
                  allowed: Sequence[str] | None = None) -> list[UserList]:
        """Each user's slate from ``Pipeline.recommend_many`` (see ``requests``); ``allowed``:
        only these item ids may be recommended (None: every item)."""
        blocked = self.blocked(allowed)
        slates = self.runtime.pipeline.recommend_many(
            self.requests(user_ids, k=k, now=now, exclude=exclude, blocked=blocked))
        return [self._answer(user_id, slate) for user_id, slate in zip(user_ids, slates, strict=True)]

    def blocked(self, allowed: Sequence[str] | None) -> np.ndarray | None:
        """Item indices outside ``allowed`` (None when every item is allowed)."""
        if allowed is None:
            return None
        keep = np.zeros(len(self.runtime.catalog), bool)
        idx = self.runtime.catalog.item_ids.encode(list(allowed), missing=-1)
        keep[idx[idx >= 0]] = True
        return np.flatnonzero(~keep).astype(np.int32)

    def _answer(self, user_id: str, slate: Slate) -> UserList:
        items = [s.item for s in slate.items]
        ext = self.runtime.catalog.item_ids.decode(np.asarray(items, np.int64)) if items else []
        return UserList(user_id, [str(x) for x in ext], [float(s.score) for s in slate.items],
                        list(slate.fallbacks))

    def close(self) -> None:
        if self._own_store and getattr(self, "store", None) is not None:
            self.store.close()


# --- several processes ----------------------------------------------------------------------------
_WORKER: dict[str, Any] = {}


def _init_worker(config: WinnowConfig, k: int, now: float, allowed: Sequence[str] | None) -> None:
    import os

    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    _WORKER.update(batch=ServedBatch(config), k=k, now=now, allowed=allowed)


def _run_chunk(args: tuple[Sequence[str], Sequence[Sequence[str]] | None]) -> list[UserList]:
    users, exclude = args
    return _WORKER["batch"].recommend(users, k=_WORKER["k"], now=_WORKER["now"], exclude=exclude,
                                      allowed=_WORKER["allowed"])


def recommend_users(config: WinnowConfig, user_ids: Sequence[str], *, k: int, now: float,
                    exclude: Sequence[Sequence[str]] | None = None, allowed: Sequence[str] | None = None,
                    workers: int = 1, chunk: int = CHUNK) -> list[UserList]:
    """``ServedBatch(config).recommend`` for every user, over ``workers`` spawned processes
    (1: in this process). Same lists, in the same order, for any ``workers``."""
    if exclude is not None and len(exclude) != len(user_ids):
        raise ValueError(f"exclude has {len(exclude)} rows for {len(user_ids)} users")
    if workers <= 1 or len(user_ids) <= chunk:
        batch = ServedBatch(config)
        try:
            return batch.recommend(user_ids, k=k, now=now, exclude=exclude, allowed=allowed)
        finally:
            batch.close()
    tasks = [(list(user_ids[s:s + chunk]), list(exclude[s:s + chunk]) if exclude is not None else None)
             for s in range(0, len(user_ids), chunk)]
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker,
                             initargs=(config, k, now, allowed)) as pool:
        return [answer for part in pool.map(_run_chunk, tasks) for answer in part]
