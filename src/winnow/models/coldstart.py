"""Cold start: segment popularity for new users, the fallback chain, and scoring new items.

``SegmentPopularity`` ("what users like you engaged with"): a ridge regression from a user's
one-hot attribute tokens (plus pairwise crosses of the first three attributes) to the item
columns of the users x items matrix, fitted on users with events:
    W = (X'X + l2 I)^-1 X'Y,   score(user) = x_user W      (X: [n_users, n_tokens], Y binary).
With only a bias column it is global popularity; each attribute adds its segment's deviation,
and the ridge shrinks small segments towards the global mean. ``segment_first`` > 0 learns only
from each user's first N events ("what users like you engaged with *first*").

The user fallback chain (``[coldstart] user_chain``): the rule with the largest minimum event
count <= the user's count applies; "model" and "segment_popular" are blended as
``a * z(model) + (1 - a) * z(segment)``, a = n / (n + user_k), z = per-user standardised scores.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from winnow.core.config import ColdStartConfig
from winnow.core.errors import NotFittedError
from winnow.data.interactions import Interactions
from winnow.models.two_tower.encoding import attribute_tokens


def _user_tokens(attrs: dict[str, Any]) -> list[str]:
    toks = attribute_tokens(attrs)
    base = [t for t in toks if "[:" not in t][:3]
    return toks + [f"{a}&{b}" for i, a in enumerate(base) for b in base[i + 1:]]


class SegmentPopularity:
    """Attribute-driven item scores for users without (enough) events. Internal indices."""

    def __init__(self, *, l2: float = 200.0, first: int = 0) -> None:
        self.l2 = l2
        self.first = first

    def _design(self, attributes: Sequence[object]) -> sp.csr_matrix:
        rows, cols = [], []
        for r, a in enumerate(attributes):
            rows.append(r)
            cols.append(0)  # bias
            for t in _user_tokens(a if isinstance(a, dict) else {}):
                j = self.vocab_.get(t)
                if j is not None:
                    rows.append(r)
                    cols.append(j)
        return sp.csr_matrix((np.ones(len(rows), np.float64), (rows, cols)),
                             shape=(len(attributes), len(self.vocab_) + 1))

    def fit(self, train: Interactions, attributes: Sequence[object]) -> SegmentPopularity:
        """``attributes[u]``: the attribute dict of user index u (``Dataset.users['attributes']``)."""
        inter = train
        if self.first > 0 and len(train):
            order = np.lexsort((train.timestamp, train.user))
            u = train.user[order]
            first_row = np.r_[True, u[1:] != u[:-1]]
            start = np.maximum.accumulate(np.where(first_row, np.arange(len(u)), 0))
            inter = train.subset(order[np.arange(len(u)) - start < self.first])
        y = inter.to_csr(binary=True)
        active = np.flatnonzero(np.diff(y.indptr) > 0)
        counts: dict[str, int] = {}
        for user in active.tolist():
            a = attributes[user] if user < len(attributes) else {}
            for t in _user_tokens(a if isinstance(a, dict) else {}):
                counts[t] = counts.get(t, 0) + 1
        self.vocab_ = {t: j + 1 for j, t in enumerate(sorted(t for t, c in counts.items() if c >= 2))}
        x = self._design([attributes[user] if user < len(attributes) else {} for user in active.tolist()])
        gram = (x.T @ x).toarray()
        gram[np.diag_indices_from(gram)] += self.l2
        gram[0, 0] += 1e-6 - self.l2  # do not shrink the bias (global popularity)
        self.weights_ = np.linalg.solve(gram, (x.T @ y[active]).toarray()).astype(np.float32)
        self.n_items_ = y.shape[1]
        return self

    def score(self, attributes: Sequence[object]) -> np.ndarray:
        """float32 [len(attributes), n_items] scores for users described by attribute dicts."""
        if not hasattr(self, "weights_"):
            raise NotFittedError("SegmentPopularity is not fitted; call fit() first")
        return np.asarray(self._design(list(attributes)) @ self.weights_, dtype=np.float32)

    def save(self, directory: str | Path) -> None:
        """``segment.json`` (vocabulary, l2, first) + ``segment.npz`` (weights float32 [V + 1, n_items])."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        np.savez(d / "segment.npz", weights=self.weights_)
        (d / "segment.json").write_text(json.dumps({"l2": self.l2, "first": self.first,
                                                    "vocab": self.vocab_}), encoding="utf-8")

    @classmethod
    def load(cls, directory: str | Path) -> SegmentPopularity:
        """A model written by ``save``."""
        d = Path(directory)
        meta = json.loads((d / "segment.json").read_text(encoding="utf-8"))
        seg = cls(l2=float(meta["l2"]), first=int(meta["first"]))
        seg.vocab_ = {str(k): int(v) for k, v in meta["vocab"].items()}
        with np.load(d / "segment.npz", allow_pickle=False) as z:
            seg.weights_ = z["weights"]
        seg.n_items_ = seg.weights_.shape[1]
        return seg


def chain_rule(config: ColdStartConfig, n_events: int) -> list[str]:
    """The sources the fallback chain names for a user with ``n_events`` events."""
    best = max((int(k) for k in config.user_chain if int(k) <= n_events), default=0)
    return config.user_chain[str(best)]


def _z(scores: np.ndarray) -> np.ndarray:
    finite = np.where(np.isfinite(scores), scores, np.nan)
    mu = np.nanmean(finite, axis=1, keepdims=True)
    sd = np.nanstd(finite, axis=1, keepdims=True)
    return (scores - mu) / np.maximum(sd, 1e-9)


def blend_user_scores(model: np.ndarray | None, segment: np.ndarray | None, n_events: np.ndarray, *,
                      k: float) -> np.ndarray:
    """a * z(model) + (1 - a) * z(segment), a = n / (n + k) per user; either part may be None.

    model, segment: float [n_users_batch, n_items]; n_events int [n_users_batch].
    """
    if model is None and segment is None:
        raise ValueError("blend_user_scores needs model or segment scores")
    if model is None:
        return _z(segment)  # type: ignore[arg-type]
    if segment is None:
        return _z(model)
    a = (n_events / (n_events + k)).astype(np.float32)[:, None]
    return a * _z(model) + (1.0 - a) * _z(segment)


def quantile_merge(warm_scores: np.ndarray, tt_scores: np.ndarray, cold: np.ndarray) -> np.ndarray:
    """Put cold items on the warm model's score scale for one batch of users.

    For each user, a cold item whose two-tower score would rank it at position p among the
    warm items (by two-tower score) gets the warm model's p-th best score, so warm and cold
    items are ranked together. warm_scores, tt_scores: float [b, n_items]; cold: bool [n_items].
    Returns a copy of ``warm_scores`` with cold columns filled.
    """
    out = np.array(warm_scores, dtype=np.float32, copy=True)
    if not cold.any() or cold.all():
        if cold.all():
            out[:] = tt_scores
        return out
    warm = ~cold
    for r in range(out.shape[0]):
        tt_w = np.sort(tt_scores[r, warm])  # ascending
        m_w = np.sort(warm_scores[r, warm])
        pos = np.searchsorted(tt_w, tt_scores[r, cold]) / max(len(tt_w), 1)
        out[r, cold] = np.quantile(m_w, np.clip(pos, 0, 1))
    return out


def user_attributes(users: pd.DataFrame, n_users: int) -> list[dict[str, Any]]:
    """Attribute dict per user index (empty dicts where the frame has no row)."""
    if len(users) != n_users or "attributes" not in users:
        return [{} for _ in range(n_users)]
    return [a if isinstance(a, dict) else {} for a in users["attributes"]]


class ColdStartHook:
    """The cold-start path of ``batch-recommend`` (and any offline caller), in one object.

    - Users with fewer events than the largest ``user_chain`` threshold are scored by their
      chain rule: segment popularity from attributes, blended with the model as events arrive.
    - Items with no training events (allowed as candidates) are scored by the two-tower item
      tower on content and merged into the model's ranking with ``quantile_merge``; when every
      allowed item is cold, the two-tower scores rank them directly.
    Everyone else goes straight to ``model.recommend``.
    """

    def __init__(self, dataset: Any, config: Any, *, model: Any, train: Interactions,
                 candidates: np.ndarray | None = None) -> None:
        self.config: ColdStartConfig = config.coldstart
        self.model = model
        self.train = train
        self.n_events = np.diff(train.to_csr(binary=True).indptr)
        self.attrs = user_attributes(dataset.users, train.n_users)
        self.segment = SegmentPopularity(l2=self.config.segment_l2, first=self.config.segment_first).fit(
            train, self.attrs)
        self.chain_max = max(int(k) for k in self.config.user_chain)
        counts = np.bincount(train.item, minlength=train.n_items)
        allowed = np.zeros(train.n_items, bool)
        allowed[np.arange(train.n_items) if candidates is None else candidates] = True
        self.cold_items = (counts == 0) & allowed
        self.two_tower = None
        if self.config.items and self.cold_items.any():
            from winnow.models.two_tower import TwoTowerRecommender

            self.two_tower = TwoTowerRecommender.from_config(config.models.two_tower).with_side_info(
                dataset.items, dataset.users).fit(train)

    def scores(self, users: np.ndarray) -> np.ndarray:
        """float32 [len(users), n_items] cold-start scores (internal user indices)."""
        users = np.asarray(users, np.int64)
        n = self.n_events[users]
        rules = [chain_rule(self.config, int(c)) for c in n]
        use_seg = np.array(["segment_popular" in r or "popularity" in r for r in rules])
        use_model = np.array(["model" in r for r in rules])
        seg = self.segment.score([self.attrs[u] for u in users])
        mod = np.array(self.model.scores(users), dtype=np.float32) if use_model.any() else seg
        a = np.where(use_model & use_seg, n / (n + self.config.user_k), np.where(use_model, 1.0, 0.0))
        a = a.astype(np.float32)[:, None]
        base = a * _z(mod) + (1.0 - a) * _z(seg)
        if self.two_tower is None:
            return base
        tt = np.array(self.two_tower.scores(users), dtype=np.float32)
        return quantile_merge(base, tt, self.cold_items)

    def recommend(self, users: np.ndarray, k: int, *, exclude: sp.csr_matrix | None,
                  candidates: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """Same contract as Recommender.recommend, routing each user to the model or the hook.

        Users under the chain threshold are scored by ``scores``. Other users get the model's
        own top-k over the warm allowed items, with each cold item inserted at the position its
        two-tower score takes among the warm allowed items (``insert_cold``).
        """
        from winnow.models.base import apply_exclusions, top_k

        users = np.asarray(users, np.int64)
        chained = self.n_events[users] < self.chain_max
        width = min(k, self.train.n_items)
        out_i = np.full((len(users), width), -1, np.int32)
        out_s = np.full((len(users), width), -np.inf, np.float32)
        allowed = np.arange(self.train.n_items) if candidates is None else np.asarray(candidates, np.int64)
        warm_allowed = allowed[~self.cold_items[allowed]]
        plain = users[~chained]
        if len(plain):
            if self.two_tower is None:
                i, s = self.model.recommend(plain, k, exclude=exclude, candidates=candidates)
            elif len(warm_allowed) == 0:
                i, s = self.two_tower.recommend(plain, k, exclude=exclude, candidates=candidates)
            else:
                i, s = self.model.recommend(plain, k, exclude=exclude, candidates=warm_allowed)
                i, s = self.insert_cold(plain, i, s, exclude=exclude, warm_allowed=warm_allowed)
            out_i[~chained], out_s[~chained] = i[:, :width], s[:, :width]
        if chained.any():
            sc = self.scores(users[chained])
            apply_exclusions(sc, users[chained], exclude, candidates)
            i, s = top_k(sc, k)
            out_i[chained], out_s[chained] = i, s
        return out_i, out_s

    def insert_cold(self, users: np.ndarray, recs: np.ndarray, scores: np.ndarray, *,
                    exclude: sp.csr_matrix | None, warm_allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Merge cold items into the model's lists: a cold item whose two-tower score beats all
        but p warm allowed items goes to position p (ties: after the warm item). Its score is
        the score of the warm item it displaces (the model's scale). Shapes as recommend()."""
        from winnow.models.base import apply_exclusions

        k = recs.shape[1]
        tt = np.array(self.two_tower.scores(users), dtype=np.float32)  # type: ignore[union-attr]
        apply_exclusions(tt, users, exclude, None)
        cold = np.flatnonzero(self.cold_items)
        out_i, out_s = np.array(recs), np.array(scores)
        for r in range(len(users)):
            warm_tt = np.sort(tt[r, warm_allowed])[::-1]
            warm_tt = warm_tt[np.isfinite(warm_tt)]
            c_tt = tt[r, cold]
            ok = np.isfinite(c_tt)
            pos = len(warm_tt) - np.searchsorted(warm_tt[::-1], c_tt[ok], side="right")
            keys = np.r_[np.arange(k, dtype=np.float64)[recs[r] >= 0], pos - 0.5]
            ids = np.r_[recs[r][recs[r] >= 0], cold[ok]]
            order = np.argsort(keys, kind="stable")[:k]
            warm_scores = scores[r][recs[r] >= 0]
            if len(warm_scores):  # position p takes the score of the warm item it displaces
                fill = warm_scores[np.minimum(np.ceil(keys[order]).astype(int), len(warm_scores) - 1)]
            else:
                fill = np.zeros(len(order), np.float32)
            out_i[r] = -1
            out_s[r] = -np.inf
            out_i[r, :len(order)] = ids[order]
            out_s[r, :len(order)] = fill
        return out_i, out_s
