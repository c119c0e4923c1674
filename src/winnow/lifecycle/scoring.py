"""A bundle's top-k on the cycle's holdout, in the snapshot's index space, so champion and
challenger are measured on the same users, the same relevant items and the same catalog.

Contract: ``bundle_topk`` asks the bundle's retrieval model ``[lifecycle.gate] model`` for the
top-k of the evaluated users (external ids mapped into the bundle's ids), excluding what each
user did before the holdout start and every item shown to them in the holdout window
(``data.shown``, when the gate excludes shown positives), and maps the items back to the snapshot's item indices. A
user or item the bundle does not know cannot be recommended by it: its row is padded with -1
(a miss), never dropped, so a bundle is not rewarded for knowing fewer users.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from winnow.bundle import Bundle
from winnow.core.errors import BundleError
from winnow.lifecycle.datasets import CycleData
from winnow.metrics import evaluate_recs


def _model(bundle: Bundle, name: str) -> Any:
    if name not in bundle.models:
        raise BundleError(f"bundle {bundle.version} has no model {name!r} for the gate "
                          f"(it holds {sorted(bundle.models)}); set [lifecycle.gate] model")
    return bundle.models[name]


def bundle_topk(bundle: Bundle, model_name: str, data: CycleData, users: np.ndarray, k: int, *,
                exclude_shown: bool = True) -> np.ndarray:
    """int64 [len(users), k] snapshot item indices (-1 = padding) of the bundle's top-k for
    ``users`` (snapshot user indices); see the module docstring. ``exclude_shown`` False keeps
    the shown items eligible (the off-policy estimate matches the challenger's slates against
    the logged ones, which are the shown items)."""
    model = _model(bundle, model_name)
    ds = data.ds
    b_user = bundle.user_ids.encode(ds.user_ids.decode(users), missing=-1).astype(np.int64)
    item_to_b = bundle.item_ids.encode(ds.item_ids.ids, missing=-1).astype(np.int64)  # snapshot -> bundle
    b_to_item = ds.item_ids.encode(bundle.item_ids.ids, missing=-1).astype(np.int64)  # bundle -> snapshot
    out = np.full((len(users), k), -1, np.int64)
    known = np.flatnonzero(b_user >= 0)
    if len(known) == 0:
        return out
    seen = data.train.to_csr(binary=True)[users[known]]
    if exclude_shown and data.shown is not None and data.shown.nnz:
        seen = seen + data.shown[users[known]]
    seen = seen.tocoo()
    col = item_to_b[seen.col]
    keep = col >= 0
    exclude = sp.csr_matrix((np.ones(int(keep.sum()), np.float32), (b_user[known][seen.row[keep]], col[keep])),
                            shape=(len(bundle.user_ids), len(bundle.item_ids)))
    recs, _ = model.recommend(b_user[known], k, exclude=exclude)
    recs = np.asarray(recs, np.int64)
    mapped = np.where(recs >= 0, b_to_item[np.maximum(recs, 0)], -1)
    out[known, :mapped.shape[1]] = mapped
    return out


def holdout_metrics(recs: np.ndarray, data: CycleData, k: int) -> dict[str, float]:
    """NDCG@k, recall@k and coverage@k (over the snapshot's catalog) of ``recs`` (rows =
    ``data.users``) on the holdout; winnow.metrics definitions."""
    m = evaluate_recs(recs, data.holdout, k=k, users=data.users)
    return {"ndcg": m[f"ndcg@{k}"], "recall": m[f"recall@{k}"], "coverage": m[f"coverage@{k}"],
            "users": int(m["n_users"])}
