"""The two-tower's early-stopping validation score, bounded on big catalogs.

Every epoch the validation users (at most ``validation_users``, a seeded sample) are ranked and
scored by NDCG@10 of their held-out items (their training items excluded). A catalog of at most
``validation_items`` items is ranked whole, exactly as before the bound existed. A bigger one is
replaced by a fixed set of ``validation_items`` items drawn once per run (seeded): every item a
validation user holds out, then a uniform sample of the rest. The score is then NDCG@10 among
that set -- a proxy that compares the epochs of one run (what early stopping needs), not a
figure comparable with full-catalog metrics -- and a pass costs O(users x validation_items)
instead of O(users x catalog): at 1M items, 1000 users x 1M scores and the item tower over the
whole catalog every epoch took longer than the epoch itself.

Scores are computed for a block of users at a time (``BLOCK_CELLS`` user x item cells), so a
pass never holds a users x catalog matrix.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from winnow.metrics import evaluate_recs
from winnow.models.base import top_k

BLOCK_CELLS = 16_000_000  # user x item scores held at once (64 MB of float32)


def validation_catalog(test: sp.csr_matrix, users: np.ndarray, n_items: int, cap: int,
                       *, seed: int) -> np.ndarray | None:
    """Sorted item indices to rank (None: the whole catalog, ``n_items <= cap``): the held-out
    items of ``users`` in ``test``, plus a seeded uniform sample of the others up to ``cap``."""
    if n_items <= cap:
        return None
    held = np.unique(test[users].indices)
    if len(held) >= cap:
        return np.sort(np.random.default_rng(seed).choice(held, cap, replace=False))
    rest = np.setdiff1d(np.arange(n_items), held, assume_unique=True)
    extra = np.random.default_rng(seed).choice(rest, cap - len(held), replace=False)
    return np.sort(np.r_[held, extra])


def validation_ndcg(user_vecs: np.ndarray, item_vecs: np.ndarray, bias: np.ndarray | float,
                    seen: sp.csr_matrix, test: sp.csr_matrix, users: np.ndarray,
                    catalog: np.ndarray | None) -> float:
    """NDCG@10 of ``users`` (sorted; ``user_vecs`` row-aligned) ranking the items of ``catalog``
    (``item_vecs`` / ``bias`` row-aligned with it; None = every item), their ``seen`` items
    (csr, one row per user of ``users``) excluded; ``test``: held-out items, full item space."""
    col = None
    if catalog is not None:
        col = np.full(seen.shape[1], -1, np.int64)
        col[catalog] = np.arange(len(catalog))
    chunk = max(1, BLOCK_CELLS // max(1, len(item_vecs)))
    recs = []
    for s in range(0, max(1, len(users)), chunk):
        scores = user_vecs[s:s + chunk] @ item_vecs.T + bias
        sub = seen[s:s + chunk]
        rows, cols = np.repeat(np.arange(sub.shape[0]), np.diff(sub.indptr)), sub.indices
        if col is not None:
            cols = col[cols]
            rows, cols = rows[cols >= 0], cols[cols >= 0]
        scores[rows, cols] = -np.inf
        top = top_k(scores, 10)[0]
        recs.append(top if catalog is None else np.where(top >= 0, catalog[np.maximum(top, 0)], -1))
    return float(evaluate_recs(np.vstack(recs), test, k=10, users=users)["ndcg@10"])
