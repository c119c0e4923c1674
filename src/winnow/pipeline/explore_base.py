"""The exploration policy contract (winnow.pipeline.explore): per-request seeds, the
``Selection`` a policy returns (served order + propensities), the ``Policy`` protocol, and the
checks and Monte Carlo marginals the policies share. Re-exported by winnow.pipeline.explore."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np


def request_seed(request_id: str, *, salt: str = "explore") -> int:
    """A 64-bit seed derived from ``request_id`` (stable across processes and platforms)."""
    digest = hashlib.blake2b(f"{salt}:{request_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little")


@dataclass(frozen=True)
class Selection:
    """A policy's slate for one request.

    order: int64 [k'] indices into the ranked input (scores array), in served position order.
    propensity: float64 [k'] marginal P(that item at that position | request).
    prefix_propensity: float64 [k'] or None: P(the served prefix up to position j) (Plackett-Luce).
    method: "exact" or "mc" (how propensity was computed).
    """

    order: np.ndarray
    propensity: np.ndarray
    prefix_propensity: np.ndarray | None = None
    method: Literal["exact", "mc"] = "exact"


class Policy(Protocol):
    """Exploration policy: ranked scores (best first) -> slate of k with propensities."""

    name: str

    def select(self, scores: np.ndarray, k: int, *, seed: int,
               items: np.ndarray | None = None) -> Selection: ...


def check_scores(scores: np.ndarray, k: int) -> tuple[np.ndarray, int]:
    """``scores`` as float64 [n] and the slate length min(k, n); ValueError on a bad shape or k."""
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 1:
        raise ValueError(f"scores must be 1-d, got shape {s.shape}")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    return s, min(k, len(s))


def mc_marginals(draws: np.ndarray, order: np.ndarray) -> np.ndarray:
    """P(order[j] at position j) from replayed slates draws [n_mc, k], counting the actual one."""
    n_mc = draws.shape[0]
    hits = (draws == order[None, :]).sum(axis=0)
    return (hits + 1.0) / (n_mc + 1.0)
