"""Stage 2, datasets: the snapshot split in time into the challenger's training part and the
holdout the gate scores champion and challenger on.

Contract: ``holdout_start = cut - holdout_days * 86400``. The challenger trains on the snapshot's
events with timestamp < holdout_start (``winnow train``'s job with ``until=holdout_start``); the
holdout is the positive events in [holdout_start, cut). The evaluated users have positives on
both sides (at most ``[lifecycle.gate] max_users``, a seeded sample); what they did before the
holdout is excluded from their top-k. Too few such users is an error: the gate could not judge.

Exposure (``[lifecycle.gate] shown_positives = "exclude"``, the default): ``shown`` holds every
(user, item) pair of the impression log in [holdout_start, cut) (``Store.read_shown_items``). A
holdout positive on such a pair is dropped, and ``shown`` is excluded from both bundles' top-k
(winnow.lifecycle.scoring), like the training positives. The served bundle (usually the champion)
chose those items, so the clicks on them are outcomes of its own exposure: kept, they score the
champion on the log it generated (stop 19 measured a 15-60% NDCG "lead" of a champion whose
slates the simulated users engaged with 20-45% less). With "include", or without impressions,
``shown`` is empty and the split is the plain time split.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from winnow.core.config import WinnowConfig
from winnow.core.errors import DataError
from winnow.data.interactions import Dataset, Interactions
from winnow.data.store import Store
from winnow.data.training_data import load_dataset


@dataclass
class CycleData:
    """The snapshot in memory: ``ds`` (every event < cut; ids index the holdout arrays),
    ``train`` / ``holdout`` (positives before / from ``holdout_start``; ``holdout`` without the
    shown pairs), ``users`` (int64 [n] evaluated user indices into ``ds.user_ids``), ``shown``
    (users x items CSR of the pairs shown in the holdout window; empty with "include") and
    ``shown_dropped`` (holdout positives dropped because they were shown)."""

    ds: Dataset
    cut: int
    holdout_start: int
    train: Interactions
    holdout: Interactions
    users: np.ndarray
    shown: sp.csr_matrix | None = None
    shown_dropped: int = 0


def shown_pairs(store: Store, ds: Dataset, since: int, until: int) -> sp.csr_matrix:
    """Binary users x items CSR (``ds``'s indices) of the impression log's shown items with
    since <= timestamp < until; users or items the snapshot does not know are left out."""
    frame = store.read_shown_items(since=since, until=until)
    u = ds.user_ids.encode(frame["user_id"].to_numpy(), missing=-1).astype(np.int64)
    i = ds.item_ids.encode(frame["item_id"].to_numpy(), missing=-1).astype(np.int64)
    keep = (u >= 0) & (i >= 0)
    m = sp.csr_matrix((np.ones(int(keep.sum()), np.float32), (u[keep], i[keep])),
                      shape=(len(ds.user_ids), len(ds.item_ids)))
    m.data[:] = 1.0  # duplicates summed: binary again
    return m


def _sha(inter: Interactions) -> str:
    h = hashlib.sha256()
    for arr in (inter.user, inter.item, inter.timestamp, inter.weight):
        h.update(np.ascontiguousarray(arr).tobytes())
    return h.hexdigest()


def build(store: Store, config: WinnowConfig, cut: int) -> CycleData:
    """Load the snapshot (events < cut) and split it (module docstring); DataError when either
    side is empty or fewer than ``min_holdout_users`` users can be evaluated."""
    gate = config.lifecycle.gate
    ds = load_dataset(store, config.events, name=f"snapshot<{cut}", until=cut)
    start = int(cut - gate.holdout_days * 86400)
    inter = ds.interactions
    before = inter.timestamp < start
    train, holdout = inter.subset(before), inter.subset(~before)
    shown = None
    dropped = 0
    if gate.shown_positives == "exclude":
        shown = shown_pairs(store, ds, start, cut)
        if shown.nnz:
            was = np.asarray(shown[holdout.user, holdout.item]).ravel() > 0
            dropped = int(was.sum())
            holdout = holdout.subset(~was)
    if len(train) == 0 or len(holdout) == 0:
        raise DataError(f"the holdout window [{start}, {cut}) leaves {len(train)} positive events before it "
                        f"and {len(holdout)} in it ({dropped} more on shown items, dropped: [lifecycle.gate] "
                        "shown_positives); both must be non-empty (adjust [lifecycle.gate] holdout_days)",
                        source="snapshot", field="holdout_days", value=gate.holdout_days)
    users = np.intersect1d(np.unique(train.user), np.unique(holdout.user)).astype(np.int64)
    if len(users) < gate.min_holdout_users:
        raise DataError(f"{len(users)} users have events both before and in the holdout window, fewer than "
                        f"[lifecycle.gate] min_holdout_users = {gate.min_holdout_users}: the gate cannot judge",
                        source="snapshot", field="min_holdout_users", value=gate.min_holdout_users)
    if len(users) > gate.max_users:
        rng = np.random.default_rng(gate.seed)
        users = np.sort(rng.choice(users, gate.max_users, replace=False))
    return CycleData(ds, cut, start, train, holdout, users, shown, dropped)


def summary(data: CycleData) -> dict[str, Any]:
    """The datasets stage's outputs (counts and hashes; the arrays are rebuilt from the store)."""
    return {"cut": data.cut, "holdout_start": data.holdout_start, "train_events": len(data.train),
            "holdout_events": len(data.holdout), "holdout_shown_dropped": data.shown_dropped,
            "users_evaluated": len(data.users),
            "train_sha256": _sha(data.train), "holdout_sha256": _sha(data.holdout),
            "users_sha256": hashlib.sha256(data.users.tobytes()).hexdigest()}
