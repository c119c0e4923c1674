"""Position bias of logged clicks: the examination curve, and the correction the ranker trains with.

A slate shown at positions 0, 1, ... is clicked under the position-based model (PBM)

    P(click | row) = theta[position] * gamma(x)      theta: examination, gamma: relevance

so an item on top gets clicks because it is on top. ``estimate_examination`` fits theta by
maximum likelihood, alternating a relevance model and the per-position theta: gamma(x) =
sigmoid(f(x)) is a LightGBM model boosted on the PBM likelihood itself (custom objective),
theta[j] is maximised given gamma (1-D, scipy). The relevance model over the rows' features is
the idea of regression-EM (Wang et al., "Position Bias Estimation for Unbiased Learning to Rank
in Personal Search", WSDM 2018); its EM updates converged too slowly at click rates of a few
percent, so the same likelihood is climbed directly. Only the ratio theta[j] / theta[0] is
identified (a click says nothing about how the examination and relevance scales split), so
theta[0] is fixed at 1: ``examination[0] == 1``.

The correction (``[ranker] position_bias``, ``correction``):

- ``"ips"``: inverse-propensity weighting -- each clicked row weighs 1 / examination[position]
  (clipped at ``max_weight``), unclicked rows 1; LightGBM lambdarank multiplies a row's
  gradient by its weight. The curve is estimated on the training rows (above).
- ``"lambdarank"``: LightGBM's own unbiased lambdarank (``position`` in the Dataset, lightgbm
  >= 4.1: position bias factors learnt jointly with the trees, Unbiased LambdaMART). The curve
  is still estimated, for the report and for early stopping (LightGBM does not export its factors).
- ``"none"``: clicks as logged.

Rows with a position at or past ``max_positions - 1`` share the last position's theta.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import lightgbm as lgb
import numpy as np
from scipy.optimize import brentq

MODES: tuple[str, ...] = ("none", "ips", "lambdarank")
_EPS = 1e-6


@dataclass(frozen=True)
class ExaminationCurve:
    """Estimated examination per position, relative to position 0 (``examination[0] == 1``).

    shown / clicks: rows and clicked rows per position (the last entry pools every position at
    or past it); iterations: EM iterations run; converged: the curve moved less than the
    tolerance in the last one."""

    examination: list[float]
    shown: list[int]
    clicks: list[int]
    iterations: int
    converged: bool
    method: str = "pbm_ml"

    def weights(self, position: np.ndarray, label: np.ndarray, *, max_weight: float) -> np.ndarray:
        """float64 [n] inverse-propensity row weights: 1 / examination[position] (at most
        ``max_weight``) where ``label > 0``, else 1."""
        pos = np.minimum(np.asarray(position, np.int64), len(self.examination) - 1)
        inv = 1.0 / np.maximum(np.asarray(self.examination)[pos], _EPS)
        return np.where(np.asarray(label) > 0, np.minimum(inv, max_weight), 1.0)

    def to_json(self) -> dict[str, Any]:
        return {"method": self.method, "examination": self.examination, "shown": self.shown,
                "clicks": self.clicks, "iterations": self.iterations, "converged": self.converged}


def _positions(position: np.ndarray, max_positions: int) -> np.ndarray:
    pos = np.asarray(position)
    if pos.ndim != 1 or (len(pos) and (not np.all(np.isfinite(pos)) or pos.min() < 0)):
        bad = pos[~np.isfinite(pos) | (pos < 0)][:3] if pos.ndim == 1 else pos.shape
        raise ValueError(f"positions must be a 1-D array of non-negative integers, got {bad!r}")
    return np.minimum(pos.astype(np.int64), max_positions - 1)


def _theta_at(clicks: float, gamma_unclicked: np.ndarray, upper: float) -> float:
    """argmax over theta in (0, upper] of clicks * log(theta) + sum log(1 - theta * gamma) (the
    PBM likelihood of one position given the rows' relevance): the root of its derivative,
    which falls in theta (scipy brentq), or ``upper`` when it is still rising there."""
    def slope(t: float) -> float:
        return clicks / t - float(np.sum(gamma_unclicked / (1.0 - t * gamma_unclicked)))

    if clicks <= 0:
        return _EPS
    if slope(upper) >= 0:
        return upper
    return float(brentq(slope, _EPS, upper, xtol=1e-9))


def estimate_examination(x: np.ndarray, label: np.ndarray, position: np.ndarray, *,
                         max_positions: int = 50, iterations: int = 30, tol: float = 1e-4,
                         relevance_rounds: int = 5, seed: int = 0, num_threads: int = 1
                         ) -> ExaminationCurve:
    """Maximum-likelihood fit of the PBM (module docstring), theta[0] fixed at 1.

    Coordinate ascent on the PBM log-likelihood sum c log(theta gamma) + (1 - c) log(1 - theta gamma):
    the relevance gamma(x) = sigmoid(f(x)) is boosted ``relevance_rounds`` rounds per iteration by
    LightGBM with the likelihood as its objective (gradient and Fisher information, theta fixed),
    then each theta[j] is maximised given gamma (1-D, ``_theta_at``). Where the paper's EM gives
    unclicked rows soft labels and converges slowly at low click rates (an unclicked row is
    almost as likely unexamined as irrelevant), this climbs the same likelihood directly.

    Args:
        x: float [n, F] features of the logged rows (NaN allowed); the relevance model's input.
        label: [n] click labels (> 0 = clicked; graded labels count as clicks).
        position: [n] 0-based position each row was shown at.
        max_positions: positions at or past ``max_positions - 1`` are pooled into the last.
        iterations / tol: rounds of coordinate ascent at most; stop when no theta moves more than tol.
        relevance_rounds: boosting rounds of the relevance model per round.
    Raises ValueError for mismatched lengths, negative positions, or no click at position 0
    (the curve is relative to it).
    """
    x = np.asarray(x, np.float64)
    clicked = (np.asarray(label) > 0).astype(np.float64)
    if not len(x) == len(clicked) == len(position):
        raise ValueError(f"x has {len(x)} rows, label {len(clicked)}, position {len(position)}")
    pos = _positions(position, max_positions)
    k = int(pos.max()) + 1 if len(pos) else 1
    shown = np.bincount(pos, minlength=k).astype(np.float64)
    clicks = np.bincount(pos, weights=clicked, minlength=k)
    if shown[0] == 0 or clicks[0] == 0:
        raise ValueError(f"no click at position 0 ({int(shown[0])} rows shown there): the examination "
                         "curve is relative to the top position and cannot be estimated")
    ctr = clicks / np.maximum(shown, 1.0)
    theta = np.clip(ctr / ctr[0], _EPS, 1.0)
    p0 = float(np.clip(ctr[0], _EPS, 1 - _EPS))
    f = np.full(len(x), np.log(p0 / (1 - p0)))  # relevance logit; starts at the top position's CTR

    def objective(preds: np.ndarray, _data: Any) -> tuple[np.ndarray, np.ndarray]:
        g = 1.0 / (1.0 + np.exp(-(f + preds)))
        th = theta[pos]
        p = np.clip(th * g, _EPS, 1 - _EPS)
        grad = np.where(clicked > 0, g - 1.0, th * g * (1.0 - g) / (1.0 - p))
        hess = np.maximum(th * g * (1.0 - g) ** 2 / (1.0 - p), _EPS)  # Fisher information
        return grad, hess

    params = {"objective": objective, "learning_rate": 0.1, "num_leaves": 7, "min_data_in_leaf": max(100, len(x) // 200),
              "verbosity": -1, "seed": seed, "num_threads": num_threads, "deterministic": True,
              "force_col_wise": True}
    varies = bool(np.any(np.nanmax(x, axis=0, initial=-np.inf) > np.nanmin(x, axis=0, initial=np.inf))) if x.size else False
    data = lgb.Dataset(x, label=clicked, free_raw_data=False, params={"verbosity": -1}) if varies else None
    converged, it = False, 0
    for it in range(1, iterations + 1):
        if data is not None:
            f = f + lgb.train(params, data, num_boost_round=relevance_rounds).predict(x, raw_score=True)
        else:  # no feature varies: one relevance for every row (Fisher scoring steps)
            for _ in range(relevance_rounds):
                grad, hess = objective(np.zeros(len(x)), None)
                f = f - grad.sum() / hess.sum()
        gamma = 1.0 / (1.0 + np.exp(-f))
        upper = float(min(1.0 / max(gamma.max(), _EPS), 1e3))
        new = theta.copy()
        for j in range(1, k):
            at = pos == j
            if shown[j] > 0:
                new[j] = _theta_at(clicks[j], gamma[at & (clicked == 0)], upper * (1 - 1e-9))
        moved = float(np.max(np.abs(new - theta)))
        theta = new
        if moved < tol:
            converged = True
            break
    return ExaminationCurve(examination=[float(v) for v in theta], shown=[int(v) for v in shown],
                            clicks=[int(v) for v in clicks], iterations=it, converged=converged)


@dataclass
class Correction:
    """What ``LambdaRanker.fit`` takes for a position-bias correction: row ``weight`` (ips),
    row ``position`` (lambdarank), the estimated ``curve`` (validation rows are weighted by it,
    ``valid_weight``), and the ``report`` stored in ranker.json and the manifest."""

    weight: np.ndarray | None = None
    position: np.ndarray | None = None
    curve: ExaminationCurve | None = None
    max_weight: float = 20.0
    report: dict[str, Any] = field(default_factory=lambda: {"mode": "none"})

    def valid_weight(self, label: np.ndarray, position: np.ndarray | None) -> np.ndarray | None:
        """Inverse-propensity weights of validation rows (None: no curve or no positions), so
        early stopping judges the ranker on de-biased clicks, not on the clicks the shown order
        bought."""
        if self.curve is None or position is None:
            return None
        return self.curve.weights(_positions(position, len(position) + 1), label, max_weight=self.max_weight)


def weighted_ndcg(score: np.ndarray, label: np.ndarray, weight: np.ndarray, groups: np.ndarray, *,
                  at: int) -> float:
    """Mean over lists of NDCG@``at`` with row gains (2 ** label - 1) * weight: with inverse-
    propensity weights, NDCG against de-biased clicks (lists without gain count 0). Rows of a
    list are contiguous, ``groups`` = rows per list; ties are broken by row order."""
    groups = np.asarray(groups, np.int64)
    lst = np.repeat(np.arange(len(groups)), groups)
    start = np.concatenate([[0], np.cumsum(groups)[:-1]])
    gain = (np.power(2.0, np.asarray(label, np.float64)) - 1.0) * np.asarray(weight, np.float64)

    def dcg(order: np.ndarray) -> np.ndarray:
        rank = np.empty(len(order), np.int64)
        rank[order] = np.arange(len(order)) - start[lst[order]]
        disc = np.where(rank < at, 1.0 / np.log2(rank + 2.0), 0.0)
        return np.bincount(lst, weights=gain * disc, minlength=len(groups))

    rows = np.arange(len(lst))
    got = dcg(np.lexsort((rows, -np.asarray(score, np.float64), lst)))
    ideal = dcg(np.lexsort((rows, -gain, lst)))
    return float(np.mean(np.divide(got, ideal, out=np.zeros_like(got), where=ideal > 0))) if len(groups) else 0.0


def correction(mode: str, x: np.ndarray, label: np.ndarray, position: np.ndarray | None, *,
               max_weight: float = 20.0, max_positions: int = 50, seed: int = 0,
               num_threads: int = 1) -> Correction:
    """The correction ``mode`` (none | ips | lambdarank) for training rows ``x`` / ``label``
    shown at ``position`` (None: lists not from a log, nothing to correct; the report says so).
    The examination curve is estimated (``estimate_examination``) whenever a mode is on."""
    if mode not in MODES:
        raise ValueError(f"position_bias must be one of {list(MODES)}, got {mode!r}")
    if mode == "none":
        return Correction()
    if position is None:
        return Correction(report={"mode": mode, "applied": False,
                                  "why": "training lists come from history, not from shown slates"})
    try:
        curve = estimate_examination(x, label, position, max_positions=max_positions, seed=seed,
                                     num_threads=num_threads)
    except ValueError as exc:  # e.g. a log with no click on top yet: train as logged, and say so
        return Correction(report={"mode": mode, "applied": False, "why": str(exc)})
    report: dict[str, Any] = {"mode": mode, "applied": True, "max_weight": max_weight, **curve.to_json()}
    if mode == "ips":
        w = curve.weights(position, label, max_weight=max_weight)
        report["clipped_rows"] = int(np.sum((np.asarray(label) > 0) & (w >= max_weight)))
        return Correction(weight=w, curve=curve, max_weight=max_weight, report=report)
    return Correction(position=_positions(position, max_positions).astype(np.int32), curve=curve,
                      max_weight=max_weight, report=report)
