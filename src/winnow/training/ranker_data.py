"""Candidate lists for the ranker: what retrieval proposes for each user, with labels.

``generate_candidates`` asks every retrieval model for the ``per_source`` items it proposes
(``Recommender.propose``: what its serving source would propose; training items excluded),
merges and de-duplicates them into one list per user, and records each source's
score and 0-based rank per candidate (NaN where absent). With ``dense_scores`` every source also
scores the candidates it did not propose (its rank stays NaN), which is cheap for the small and
mid-sized catalogs the offline protocols use.

``label_lists`` marks candidates that are in a held-out set (1) or not (0): negatives are what
retrieval would have proposed at that moment, never uniform random items.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from winnow.data.interactions import Interactions
from winnow.models.base import Recommender, apply_exclusions


@dataclass
class CandidateLists:
    """One list per user. row_list int64 [n] (index into ``users``), row_item int64 [n] item
    indices, src_score/src_rank: source -> float64 [n] (NaN where unknown/not proposed)."""

    users: np.ndarray
    row_list: np.ndarray
    row_item: np.ndarray
    src_score: dict[str, np.ndarray]
    src_rank: dict[str, np.ndarray]

    def __len__(self) -> int:
        return len(self.row_list)

    def keep_lists(self, keep: np.ndarray) -> CandidateLists:
        """Only the lists where bool [L] ``keep`` is True (rows renumbered, still contiguous)."""
        keep = np.asarray(keep, bool)
        rows = keep[self.row_list]
        renumber = np.cumsum(keep) - 1
        return CandidateLists(self.users[keep], renumber[self.row_list[rows]], self.row_item[rows],
                              {k: v[rows] for k, v in self.src_score.items()},
                              {k: v[rows] for k, v in self.src_rank.items()})

    def groups(self) -> np.ndarray:
        """Rows per list (lists are contiguous in row order)."""
        return np.bincount(self.row_list, minlength=len(self.users))


def generate_candidates(models: dict[str, Recommender], users: np.ndarray, exclude: sp.csr_matrix, *,
                        per_source: int, allowed: np.ndarray | None = None,
                        dense_scores: bool = True, batch_size: int = 1024) -> CandidateLists:
    """Merged top-``per_source`` candidates of every model for each user (see module docstring)."""
    users = np.asarray(users, np.int64)
    n_items = exclude.shape[1]
    keys, proposals = [], {}
    for name, model in models.items():
        items, scores = model.propose(users, per_source, exclude=exclude, candidates=allowed)
        lst = np.repeat(np.arange(len(users)), items.shape[1])
        it = items.ravel().astype(np.int64)
        ok = it >= 0
        rank = np.tile(np.arange(items.shape[1]), len(users))[ok]
        key = lst[ok] * n_items + it[ok]
        proposals[name] = (key, scores.ravel()[ok].astype(np.float64), rank.astype(np.float64))
        keys.append(key)
    merged = np.unique(np.concatenate(keys)) if keys else np.empty(0, np.int64)
    row_list, row_item = merged // n_items, merged % n_items
    src_score: dict[str, np.ndarray] = {}
    src_rank: dict[str, np.ndarray] = {}
    for name, (key, score, ranks) in proposals.items():
        pos = np.searchsorted(merged, key)
        s = np.full(len(merged), np.nan)
        r = np.full(len(merged), np.nan)
        s[pos], r[pos] = score, ranks
        if dense_scores:
            s = _dense_scores(models[name], users, row_list, row_item, exclude, batch_size)
        src_score[name], src_rank[name] = s, r
    return CandidateLists(users, row_list, row_item, src_score, src_rank)


def _dense_scores(model: Recommender, users: np.ndarray, row_list: np.ndarray, row_item: np.ndarray,
                  exclude: sp.csr_matrix, batch_size: int) -> np.ndarray:
    """The model's score of every candidate row (lists sorted by row_list)."""
    out = np.full(len(row_list), np.nan)
    batch_size = max(1, min(batch_size, (1 << 24) // max(1, exclude.shape[1])))  # bound dense blocks
    bounds = np.searchsorted(row_list, np.arange(0, len(users) + batch_size, batch_size))
    for b in range(len(bounds) - 1):
        lo, hi = bounds[b], bounds[b + 1]
        if lo == hi:
            continue
        first = b * batch_size
        chunk = users[first:first + batch_size]
        scores = np.asarray(model.scores(chunk), dtype=np.float64)
        apply_exclusions(scores, chunk, exclude, None)
        out[lo:hi] = scores[row_list[lo:hi] - first, row_item[lo:hi]]
    out[~np.isfinite(out)] = np.nan
    return out


def label_lists(cands: CandidateLists, held_out: Interactions) -> np.ndarray:
    """float32 [n] 1 where (user, item) of a row is in ``held_out``, else 0."""
    truth = held_out.to_csr(binary=True)
    u = cands.users[cands.row_list]
    return np.asarray(truth[u, cands.row_item]).ravel().astype(np.float32)


def list_times(state: Interactions, users: np.ndarray, as_of: str) -> np.ndarray:
    """int64 [L] feature time t of each user's list: "user_last" = 1 s after the user's latest
    event in ``state`` (the moment the user comes back), "global_last" = 1 s after the latest
    event of anyone (one shared "now"). Users without events get the global time."""
    glob = int(state.timestamp.max()) + 1 if len(state) else 1
    if as_of == "global_last":
        return np.full(len(users), glob, np.int64)
    if as_of != "user_last":
        raise ValueError(f"as_of must be 'user_last' or 'global_last', got {as_of!r}")
    last = np.full(state.n_users, np.iinfo(np.int64).min)
    np.maximum.at(last, state.user, state.timestamp)
    t = last[users] + 1
    return np.where(last[users] == np.iinfo(np.int64).min, glob, t)
