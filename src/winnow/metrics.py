"""Offline top-k metrics from recommendation arrays, vectorised with numpy/scipy.

Inputs: ``recs`` int [n_rows, >= k] of dense item indices, best first, -1 = padding (row r is
user ``users[r]``, by default user r); the test set as ``Interactions`` or a users x items CSR
whose stored entries are the relevant items (binary relevance). Only users with >= 1 relevant
test item are evaluated; a repeated item in one list counts once (its first position).

Per user u with R = relevant items, n_rel = |R|, hit_j = 1 if the item at rank j (1-based) is
in R:
- precision@k = sum_j hit_j / k                        (always divided by k)
- recall@k    = sum_j hit_j / n_rel                    (n_rel, NOT min(k, n_rel): as Microsoft
                                                        Recommenders, so numbers compare to its
                                                        benchmark table)
- ndcg@k      = DCG / IDCG, DCG = sum_j hit_j / log2(j + 1), IDCG over min(k, n_rel) ideal hits
- map@k       = sum_j hit_j * precision@j / n_rel      (Microsoft Recommenders' map_at_k up to
                                                        1.1: divided by n_rel)
- map_min@k   = the same divided by min(k, n_rel)      (newer recommenders / "truncated" AP)
- hit_rate@k  = 1 if any hit;  mrr@k = 1 / rank of the first hit (0 if none)

Beyond accuracy (over the evaluated users' lists, padding ignored):
- coverage@k:  distinct recommended items / n_items (or / len(candidates), counting only those)
- novelty@k:   mean over recommended items of -log2(p_i), p_i = distinct training users of i /
               training users (Microsoft Recommenders' definition); items unseen in training
               count as 1 user so novelty stays finite
- popularity@k: mean distinct-training-user count of recommended items (ARP)
- gini@k:      Gini of exposure (times recommended) across the n_items catalog (or candidates);
               0 = every item shown equally, -> 1 = all exposure on one item
- diversity@k: intra-list diversity = 1 - share of item pairs in a list that share a category
               (lists with < 2 items are skipped); needs ``item_categories``
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeAlias

import numpy as np
import scipy.sparse as sp

from winnow.data.interactions import Interactions

ItemCategories: TypeAlias = sp.spmatrix | Sequence[Sequence[object]]


def _relevant_csr(test: Interactions | sp.spmatrix) -> sp.csr_matrix:
    if isinstance(test, Interactions):
        return test.to_csr(binary=True)
    if not sp.issparse(test):
        raise TypeError(f"test must be Interactions or a scipy sparse matrix, got {type(test).__name__}")
    m = sp.csr_matrix(test, dtype=np.float32, copy=True)
    m.sum_duplicates()
    m.eliminate_zeros()
    m.sort_indices()
    return m


def _prepare(recs: np.ndarray, k: int, users: np.ndarray | None,
             n_users: int, n_items: int) -> tuple[np.ndarray, np.ndarray]:
    recs = np.asarray(recs)
    if recs.ndim != 2 or not np.issubdtype(recs.dtype, np.integer):
        raise ValueError(f"recs must be a 2-d integer array, got shape {recs.shape} dtype {recs.dtype}")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k!r}")
    if users is None:
        if recs.shape[0] != n_users:
            raise ValueError(f"recs has {recs.shape[0]} rows but the test set has {n_users} users; "
                             "pass users= to say which user each row is")
        users = np.arange(n_users)
    users = np.asarray(users, dtype=np.int64)
    if users.shape != (recs.shape[0],):
        raise ValueError(f"users has shape {users.shape}, expected ({recs.shape[0]},)")
    if len(users) and (users.min() < 0 or users.max() >= n_users):
        raise ValueError(f"users must be in [0, {n_users})")
    r = recs[:, :k].astype(np.int64)
    if r.shape[1] < k:
        r = np.hstack([r, np.full((r.shape[0], k - r.shape[1]), -1, np.int64)])
    bad = (r < -1) | (r >= n_items)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise ValueError(f"recs[{row}, {col}] = {r[row, col]} is not an item index in [0, {n_items}) or -1")
    return r, users


def _first_occurrence(r: np.ndarray) -> np.ndarray:
    """bool [n, k]: True where r is a real item not already listed earlier in its row."""
    order = np.argsort(r, axis=1, kind="stable")
    s = np.take_along_axis(r, order, axis=1)
    dup_sorted = np.zeros_like(s, dtype=bool)
    dup_sorted[:, 1:] = s[:, 1:] == s[:, :-1]
    dup = np.zeros_like(dup_sorted)
    np.put_along_axis(dup, order, dup_sorted, axis=1)
    return (r >= 0) & ~dup


def _hits(rel: sp.csr_matrix, r: np.ndarray, users: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """bool [n, k]: r[i, j] is relevant for users[i] (and a first occurrence)."""
    n_items = rel.shape[1]
    rows = np.repeat(np.arange(rel.shape[0], dtype=np.int64), np.diff(rel.indptr))
    keys = rows * n_items + rel.indices            # sorted: canonical CSR
    q = users[:, None] * n_items + np.where(valid, r, 0)
    pos = np.minimum(np.searchsorted(keys, q), max(len(keys) - 1, 0))
    return valid & (keys[pos] == q) if len(keys) else np.zeros_like(valid)


def per_user_metrics(recs: np.ndarray, test: Interactions | sp.spmatrix, *, k: int,
                     users: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Accuracy metrics per evaluated user (those with >= 1 relevant item).

    Returns float64 arrays [n_eval] keyed precision, recall, ndcg, map, map_min, hit_rate, mrr,
    plus "user" (int64 user indices) and "row" (their rows in ``recs``).
    """
    rel = _relevant_csr(test)
    r, users = _prepare(recs, k, users, rel.shape[0], rel.shape[1])
    n_rel_all = np.diff(rel.indptr)
    rows = np.flatnonzero(n_rel_all[users] > 0)
    r, u = r[rows], users[rows]
    n_rel = n_rel_all[u].astype(np.float64)
    valid = _first_occurrence(r)
    hit = _hits(rel, r, u, valid).astype(np.float64)
    ranks = np.arange(1, k + 1, dtype=np.float64)
    discount = 1.0 / np.log2(ranks + 1.0)
    n_hit = hit.sum(axis=1)
    dcg = hit @ discount
    idcg = np.cumsum(discount)[np.minimum(n_rel, k).astype(np.int64) - 1]
    ap_sum = (hit * np.cumsum(hit, axis=1) / ranks).sum(axis=1)
    any_hit = n_hit > 0
    first = np.argmax(hit > 0, axis=1)
    return {
        "user": u, "row": rows,
        "precision": n_hit / k,
        "recall": n_hit / n_rel,
        "ndcg": dcg / idcg,
        "map": ap_sum / n_rel,
        "map_min": ap_sum / np.minimum(n_rel, k),
        "hit_rate": any_hit.astype(np.float64),
        "mrr": np.where(any_hit, 1.0 / (first + 1.0), 0.0),
    }


def _category_bits(item_categories: ItemCategories, n_items: int) -> np.ndarray:
    """uint64 [n_items, words]: bit c set when the item has category c."""
    if sp.issparse(item_categories):
        m = sp.csr_matrix(item_categories)
        if m.shape[0] != n_items:
            raise ValueError(f"item_categories has {m.shape[0]} rows, expected {n_items} items")
        m.eliminate_zeros()
        rows = np.repeat(np.arange(n_items), np.diff(m.indptr))
        cols = m.indices.astype(np.int64)
        n_cat = m.shape[1]
    else:
        if len(item_categories) != n_items:
            raise ValueError(f"item_categories has {len(item_categories)} entries, expected {n_items} items")
        labels: dict[object, int] = {}
        lens = np.fromiter((len(c) for c in item_categories), np.int64, n_items)
        rows = np.repeat(np.arange(n_items), lens)
        cols = np.fromiter((labels.setdefault(c, len(labels)) for cs in item_categories for c in cs),
                           np.int64, int(lens.sum()))
        n_cat = len(labels)
    bits = np.zeros((n_items, max(1, -(-n_cat // 64))), np.uint64)
    np.bitwise_or.at(bits, (rows, cols // 64), np.left_shift(np.uint64(1), (cols % 64).astype(np.uint64)))
    return bits


def intra_list_diversity(recs: np.ndarray, item_categories: ItemCategories, *, n_items: int,
                         chunk: int = 65_536) -> np.ndarray:
    """float64 [n_rows]: 1 - share of pairs of distinct listed items sharing a category; NaN for
    rows with < 2 items. ``recs`` int [n_rows, k], -1 padding."""
    bits = _category_bits(item_categories, n_items)
    r = np.asarray(recs, dtype=np.int64)
    valid = _first_occurrence(r)
    a, b = np.triu_indices(r.shape[1], k=1)
    out = np.full(r.shape[0], np.nan)
    for s in range(0, r.shape[0], chunk):
        rr, vv = r[s:s + chunk], valid[s:s + chunk]
        safe = np.where(vv, rr, 0)
        pair_ok = vv[:, a] & vv[:, b]
        same = (bits[safe[:, a]] & bits[safe[:, b]]).any(axis=-1) & pair_ok
        n_pairs = pair_ok.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[s:s + chunk] = np.where(n_pairs > 0, 1.0 - same.sum(axis=1) / n_pairs, np.nan)
    return out


def gini(x: np.ndarray) -> float:
    """Gini coefficient of non-negative values (0 = equal; NaN when all are zero)."""
    x = np.sort(np.asarray(x, dtype=np.float64))
    n, total = len(x), x.sum()
    if n == 0 or total <= 0:
        return float("nan")
    i = np.arange(1, n + 1)
    return float(((2 * i - n - 1) * x).sum() / (n * total))


def evaluate_recs(recs: np.ndarray, test: Interactions | sp.spmatrix, *, k: int,
                  train: Interactions | sp.spmatrix | None = None,
                  item_categories: ItemCategories | None = None,
                  users: np.ndarray | None = None,
                  candidates: np.ndarray | None = None) -> dict[str, float]:
    """Mean metrics over users with >= 1 test item (see the module docstring for definitions).

    Keys: "<metric>@<k>" for precision, recall, ndcg, map, map_min, hit_rate, mrr, coverage,
    gini; novelty and popularity when ``train`` is given; diversity when ``item_categories``
    is given (list of category labels per item, or an items x categories sparse matrix); and
    "n_users" (users evaluated). ``candidates``: item indices that coverage/gini are relative to.
    """
    pu = per_user_metrics(recs, test, k=k, users=users)
    n_eval = len(pu["user"])
    out: dict[str, float] = {"n_users": float(n_eval)}
    for name in ("precision", "recall", "ndcg", "map", "map_min", "hit_rate", "mrr"):
        out[f"{name}@{k}"] = float(pu[name].mean()) if n_eval else float("nan")
    n_items = test.n_items if isinstance(test, Interactions) else test.shape[1]
    r = np.asarray(recs)[pu["row"], :k].astype(np.int64)
    shown = r[_first_occurrence(r)]           # a repeated item in one list is one exposure
    exposure = np.bincount(shown, minlength=n_items).astype(np.float64)
    if candidates is not None:
        cand = np.unique(np.asarray(candidates, dtype=np.int64))
        exposure = exposure[cand]
    out[f"coverage@{k}"] = float((exposure > 0).sum() / max(len(exposure), 1))
    out[f"gini@{k}"] = gini(exposure)
    if train is not None:
        tr = _relevant_csr(train)
        if tr.shape[1] != n_items:
            raise ValueError(f"train has {tr.shape[1]} items but the test set has {n_items}")
        counts = np.diff(tr.tocsc().indptr).astype(np.float64)
        n_train_users = max(int((np.diff(tr.indptr) > 0).sum()), 1)
        share = np.maximum(counts, 1.0) / n_train_users
        out[f"novelty@{k}"] = float(-np.log2(share[shown]).mean()) if len(shown) else float("nan")
        out[f"popularity@{k}"] = float(counts[shown].mean()) if len(shown) else float("nan")
    if item_categories is not None:
        ild = intra_list_diversity(r, item_categories, n_items=n_items)
        out[f"diversity@{k}"] = float(np.nanmean(ild)) if np.isfinite(ild).any() else float("nan")
    return out
