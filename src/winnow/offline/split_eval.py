"""Offline evaluation of the served funnel on a split: what bench/funnel.py (the README's funnel
figure) measures, and what ``winnow batch-recommend`` writes for the same training part.

``train_part`` keeps the events of a split's training part (items and users whole);
``served_split_lists`` fits the served funnel on it in a scratch home (winnow.offline.served)
and answers every evaluated user -- training and test items both, as bench/funnel.py always
counted them -- with their training items excluded, as batch-recommend excludes them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from winnow.core.config import WinnowConfig
from winnow.data.importers import Imported
from winnow.data.interactions import Dataset, Interactions
from winnow.offline.served import ServedFunnel, fit_served


@dataclass(frozen=True)
class SplitLists:
    """Top-k lists of the evaluated users, in the dataset's indices.

    users: int64 [n] dataset user indices with training and test events; recs: int64 [n, k]
    item indices best first, -1 padded (a short slate); served: the fitted funnel.
    """

    users: np.ndarray
    recs: np.ndarray
    served: ServedFunnel


def train_part(imported: Imported, ds: Dataset, train: Interactions) -> Imported:
    """``imported`` with only the events whose (user, item) pair is in ``train`` (``ds``'s
    indices); items and users are kept whole (a catalog and profiles are known in advance)."""
    ev = imported.events
    u = ds.user_ids.encode(ev["user_id"].astype(str).tolist(), missing=-1)
    i = ds.item_ids.encode(ev["item_id"].astype(str).tolist(), missing=-1)
    ok = (u >= 0) & (i >= 0)
    in_train = np.zeros(len(ev), bool)
    in_train[ok] = np.asarray(train.to_csr(binary=True)[u[ok], i[ok]]).ravel() > 0
    return Imported(source=f"{imported.source} (training part)", events=ev[in_train].reset_index(drop=True),
                    items=imported.items, users=imported.users)


def served_split_lists(imported: Imported, ds: Dataset, train: Interactions, test: Interactions,
                       config: WinnowConfig, home: Path, *, k: int, workers: int = 1) -> SplitLists:
    """Fit the served funnel on ``train``'s events in the scratch home ``home`` and answer every
    user with training and test events (k items, training items excluded)."""
    train_csr, test_csr = train.to_csr(binary=True), test.to_csr(binary=True)
    users = np.flatnonzero((np.diff(test_csr.indptr) > 0) & (np.diff(train_csr.indptr) > 0)).astype(np.int64)
    served = fit_served(train_part(imported, ds, train), config, home)
    user_ext = [str(x) for x in ds.user_ids.decode(users)]
    exclude = [[str(x) for x in ds.item_ids.decode(train_csr[u].indices)] for u in users]
    lists = served.recommend(user_ext, k=k, exclude=exclude, workers=workers)
    recs = np.full((len(users), k), -1, np.int64)
    for row, answer in enumerate(lists):
        if answer.items:
            recs[row, :len(answer.items)] = ds.item_ids.encode(answer.items, missing=-1)
    return SplitLists(users, recs, served)
