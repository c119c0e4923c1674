"""Ranking stage: features for the merged candidates, and the default blend ranker.

``candidate_features`` computes, per candidate row, the features every ranker receives
(float32 [n] each): ``rank_<source>`` (rank-normalised score of each source, 1 for its top item
down to ~0 at its quota, 0 where absent), ``affinity`` (the user's online interest in the item's
category), ``popularity`` (log-scaled, in [0, 1]). The learned ranker (LightGBM) plugs in through
the same ``Ranker`` protocol.
"""

from __future__ import annotations

import numpy as np

from winnow.pipeline.types import NO_CATEGORY, Candidates, Catalog, Ranker, Request


def candidate_features(candidates: Candidates, request: Request, catalog: Catalog) -> dict[str, np.ndarray]:
    """Features of each candidate row (see module docstring)."""
    n = len(candidates)
    feats: dict[str, np.ndarray] = {}
    for name, ranks in candidates.source_ranks.items():
        quota = max(candidates.source_quota.get(name, 1), 1)
        f = np.zeros(n, np.float32)
        present = ranks >= 0
        f[present] = 1.0 - ranks[present].astype(np.float32) / quota
        feats[f"rank_{name}"] = f
    cats = catalog.category[candidates.items]
    aff = np.zeros(n, np.float32)
    if request.user.category_affinity:
        for code, value in request.user.category_affinity.items():
            if code != NO_CATEGORY:
                aff[cats == code] = value
    feats["affinity"] = aff
    pop = catalog.popularity[candidates.items].astype(np.float32)
    top = catalog.popularity_max
    feats["popularity"] = (np.log1p(np.maximum(pop, 0)) / np.log1p(top)).astype(np.float32) if top > 0 \
        else np.zeros(n, np.float32)
    return feats


class BlendRanker(Ranker):
    """A calibrated blend of source scores: sum_s w_s * rank_s / sum_s w_s + w_aff * affinity.

    Rank normalisation puts every source on the same [0, 1] scale whatever its raw score units
    (inner products, co-occurrence counts, popularity counts), so weights are comparable.
    An item proposed by several sources collects from each of them.

    Args:
        weights: source name -> weight (>= 0).
        affinity_weight: weight of the online category-interest feature.
    """

    def __init__(self, weights: dict[str, float], *, affinity_weight: float = 0.5) -> None:
        self.weights: dict[str, float] = dict(weights)
        self.affinity_weight = float(affinity_weight)
        self._norm = sum(self.weights.values()) or 1.0

    def score(self, candidates: Candidates, features: dict[str, np.ndarray]) -> np.ndarray:
        """float32 [n] scores for the candidate rows."""
        out = np.zeros(len(candidates), np.float32)
        for name, w in self.weights.items():
            f = features.get(f"rank_{name}")
            if f is not None and w:
                out += np.float32(w) * f
        out /= np.float32(self._norm)
        out += np.float32(self.affinity_weight) * features["affinity"]
        return out
