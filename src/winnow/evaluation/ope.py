"""Off-policy evaluation: the value of a target policy estimated from a logging policy's log.

Data model (position-based, for slates). The log is a set of **units** (a served slate, or a
single impression); each unit has one row per shown position:

    unit[r]        int   which unit row r belongs to
    position[r]    int   0-based slot
    reward[r]      float click (0/1) or any bounded reward
    pscore[r]      float logging policy's marginal P(item_r at position_r | context)
    target[r]      float target policy's marginal P(item_r at position_r | context)
    q_logged[r]    float reward model's prediction for the logged (context, item, position)
    dm[u]          float per unit: sum over positions of E_target[q(context, item, position)],
                   indexed by the unit's rank among the sorted distinct unit ids

The value of a policy is the expected sum of rewards per unit. The position-based (IIPS)
estimators are unbiased when a position's reward depends only on the context, the item shown
there and the position (not on the other items of the slate); with one row per unit they are
the ordinary contextual-bandit estimators.

    IPS    V = 1/U sum_r w_r r_r                       w_r = target_r / pscore_r
    SNIPS  V = sum_p (sum_{r at p} w_r r_r) / (sum_{r at p} w_r) * (units with p) / U
    DR     V = 1/U [sum_u dm_u + sum_r w_r (r_r - q_logged_r)]
    DM     V = 1/U sum_u dm_u

Confidence intervals: percentile bootstrap over units (scipy.stats.bootstrap). Effective
sample size: (sum w)^2 / sum w^2 over rows (Kish).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

import scipy.sparse as sp
from sklearn.linear_model import LogisticRegression

from winnow.core.errors import DataError

ESTIMATORS = ("ips", "snips", "dr", "dm")


@dataclass(frozen=True)
class LoggedSlates:
    """Columnar log rows (see module docstring). dm and q_logged are needed only by DR/DM."""

    unit: np.ndarray
    position: np.ndarray
    reward: np.ndarray
    pscore: np.ndarray
    target: np.ndarray
    q_logged: np.ndarray | None = None
    dm: np.ndarray | None = None  # [n_units], indexed by dense unit code

    def __post_init__(self) -> None:
        n = len(self.reward)
        for name in ("unit", "position", "pscore", "target"):
            if len(getattr(self, name)) != n:
                raise DataError(f"has {len(getattr(self, name))} rows, expected {n}", source="ope log",
                                field=name)
        if self.q_logged is not None and len(self.q_logged) != n:
            raise DataError(f"has {len(self.q_logged)} rows, expected {n}", source="ope log", field="q_logged")
        bad = np.flatnonzero(~(np.asarray(self.pscore) > 0) | ~(np.asarray(self.pscore) <= 1))
        if len(bad):
            raise DataError("logging propensity must be in (0, 1]", source="ope log", line=int(bad[0]),
                            field="pscore", value=float(self.pscore[bad[0]]))
        bad = np.flatnonzero(~(np.asarray(self.target) >= 0) | ~(np.asarray(self.target) <= 1))
        if len(bad):
            raise DataError("target probability must be in [0, 1]", source="ope log", line=int(bad[0]),
                            field="target", value=float(self.target[bad[0]]))

    @property
    def weights(self) -> np.ndarray:
        return np.asarray(self.target, np.float64) / np.asarray(self.pscore, np.float64)


@dataclass(frozen=True)
class Estimate:
    """One estimator's result: value per unit, percentile-bootstrap CI, Kish ESS, rows/units."""

    estimator: str
    value: float
    ci_low: float
    ci_high: float
    ess: float
    n_rows: int
    n_units: int

    def to_dict(self) -> dict[str, float | int | str]:
        return asdict(self)


def effective_sample_size(weights: np.ndarray) -> float:
    """Kish effective sample size (sum w)^2 / sum w^2 (0 when every weight is 0)."""
    w = np.asarray(weights, np.float64)
    denom = float((w * w).sum())
    return float(w.sum() ** 2 / denom) if denom > 0 else 0.0


def _unit_tables(log: LoggedSlates) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    """Per-unit, per-position sums: A = sum w r, W = sum w, C = row count, D = sum w (r - q)."""
    units, ucode = np.unique(np.asarray(log.unit), return_inverse=True)
    positions, pcode = np.unique(np.asarray(log.position), return_inverse=True)
    shape = (len(units), len(positions))
    w = log.weights
    r = np.asarray(log.reward, np.float64)
    a, ws, c, d = (np.zeros(shape) for _ in range(4))
    np.add.at(a, (ucode, pcode), w * r)
    np.add.at(ws, (ucode, pcode), w)
    np.add.at(c, (ucode, pcode), 1.0)
    if log.q_logged is not None:
        np.add.at(d, (ucode, pcode), w * (r - np.asarray(log.q_logged, np.float64)))
    return a, ws, c, d, len(units)


def _statistic(name: str, a: np.ndarray, ws: np.ndarray, c: np.ndarray, d: np.ndarray,
               dm: np.ndarray | None):
    """statistic(idx) over resampled unit indices (vectorised over leading axes)."""
    def fn(idx: np.ndarray, axis: int = -1) -> np.ndarray:
        idx = np.asarray(idx)
        if name == "ips":
            return a.sum(axis=1)[idx].mean(axis=-1)
        if name == "dm":
            assert dm is not None
            return dm[idx].mean(axis=-1)
        if name == "dr":
            assert dm is not None
            return (dm[idx] + d.sum(axis=1)[idx]).mean(axis=-1)
        # snips: per-position self-normalised, scaled by the share of units having that position
        num = a[idx].sum(axis=-2)
        den = ws[idx].sum(axis=-2)
        share = (c[idx] > 0).sum(axis=-2) / idx.shape[-1]
        with np.errstate(invalid="ignore", divide="ignore"):
            per_pos = np.where(den > 0, num / den, 0.0)
        return (per_pos * share).sum(axis=-1)
    return fn


def estimate(log: LoggedSlates, estimators: tuple[str, ...] = ("ips", "snips", "dr"), *,
             n_bootstrap: int = 1000, confidence: float = 0.95, seed: int = 0) -> list[Estimate]:
    """Point estimates, bootstrap CIs (resampling units) and ESS for each named estimator.

    Raises ValueError for an unknown estimator, DataError when DR/DM lack the reward model.
    """
    unknown = set(estimators) - set(ESTIMATORS)
    if unknown:
        raise ValueError(f"unknown estimators {sorted(unknown)}; valid: {ESTIMATORS}")
    a, ws, c, d, n_units = _unit_tables(log)
    dm = None
    if {"dr", "dm"} & set(estimators):
        if log.dm is None or log.q_logged is None:
            raise DataError("DR/DM need a reward model: q_logged and dm are missing", source="ope log")
        dm = np.asarray(log.dm, np.float64)
        if len(dm) != n_units:
            raise DataError(f"has {len(dm)} entries for {n_units} units", source="ope log", field="dm")
    ess = effective_sample_size(log.weights)
    idx_all = np.arange(n_units)
    out = []
    for name in estimators:
        fn = _statistic(name, a, ws, c, d, dm)
        value = float(fn(idx_all))
        if n_units > 1 and n_bootstrap > 0:
            res = stats.bootstrap((idx_all,), fn, n_resamples=n_bootstrap, confidence_level=confidence,
                                  method="percentile", vectorized=True, batch=max(1, 2_000_000 // n_units),
                                  rng=np.random.default_rng(seed))
            lo, hi = float(res.confidence_interval.low), float(res.confidence_interval.high)
        else:
            lo = hi = value
        out.append(Estimate(name, value, lo, hi, ess, len(log.reward), n_units))
    return out


def cross_fit_rewards(x: sp.spmatrix | np.ndarray, reward: np.ndarray, *, units: np.ndarray,
                      x_eval: sp.spmatrix | np.ndarray, eval_units: np.ndarray, n_folds: int = 5,
                      c: float = 1.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Direct-method reward model q(context, item, position), cross-fitted by unit.

    A logistic regression (scikit-learn) on the logged rows' features ``x`` [n, f] and 0/1
    ``reward`` [n]. Units are split into ``n_folds`` folds; the model fitted on the other folds
    predicts a fold's logged rows and its evaluation rows ``x_eval`` [m, f] (the target
    policy's candidate (context, item, position) triples, ``eval_units`` [m]), so no row is
    scored by a model that saw its own reward.

    Returns (q_logged float64 [n], q_eval float64 [m]).
    """
    reward = np.asarray(reward, np.float64)
    uniq = np.unique(np.asarray(units))
    rng = np.random.default_rng(seed)
    fold_of = dict(zip(uniq.tolist(), rng.permutation(len(uniq)) % max(1, n_folds)))
    f_log = np.fromiter((fold_of[u] for u in np.asarray(units).tolist()), np.int64, len(reward))
    f_eval = np.fromiter((fold_of.get(u, 0) for u in np.asarray(eval_units).tolist()), np.int64,
                         len(eval_units))
    x = sp.csr_matrix(x) if sp.issparse(x) else np.asarray(x)
    x_eval = sp.csr_matrix(x_eval) if sp.issparse(x_eval) else np.asarray(x_eval)
    q_log = np.zeros(len(reward))
    q_ev = np.zeros(len(eval_units))
    for f in range(max(1, n_folds)):
        train = f_log != f if n_folds > 1 else np.ones(len(reward), bool)
        y = reward[train]
        if len(np.unique(y)) < 2:  # one class only: the best model is its mean
            q_log[f_log == f] = y.mean() if len(y) else 0.0
            q_ev[f_eval == f] = y.mean() if len(y) else 0.0
            continue
        model = LogisticRegression(C=c, max_iter=2000).fit(x[train], y)
        if (f_log == f).any():
            q_log[f_log == f] = model.predict_proba(x[f_log == f])[:, 1]
        if (f_eval == f).any():
            q_ev[f_eval == f] = model.predict_proba(x_eval[f_eval == f])[:, 1]
    return q_log, q_ev


def direct_method(eval_units: np.ndarray, eval_prob: np.ndarray, q_eval: np.ndarray, *,
                  units: np.ndarray) -> np.ndarray:
    """dm per unit: sum of target probability x q over each unit's evaluation rows.

    Returns float64 [n distinct ``units``] in sorted unit order (as LoggedSlates.dm expects).
    """
    uniq = np.unique(np.asarray(units))
    code = np.searchsorted(uniq, eval_units)
    if (code >= len(uniq)).any() or (uniq[np.minimum(code, len(uniq) - 1)] != eval_units).any():
        raise DataError("evaluation row belongs to no logged unit", source="ope", field="eval_units")
    out = np.zeros(len(uniq))
    np.add.at(out, code, np.asarray(eval_prob, np.float64) * np.asarray(q_eval, np.float64))
    return out


def log_from_impressions(outcomes: pd.DataFrame, impressions: list[dict[str, Any]],
                         target: Mapping[str, Any], *, reward_events: tuple[str, ...] = ("click",),
                         surface: str | None = None, folds: int = 5, seed: int = 0) -> LoggedSlates:
    """LoggedSlates of the stored impression log for a candidate exploration policy ``target``.

    Each served item must carry ``propensity`` (missing -> 1, a deterministic policy) and may
    carry ``rank`` (its 0-based rank in the list the explore stage saw; default: its position);
    the impression context may carry ``n_ranked`` (that list's length; default: the slate
    size). The target's marginals come from ``rank_marginals`` (policies fed rank scores).
    Reward: 1 when any of ``reward_events`` followed the item with the same request_id.
    DR's reward model: logistic regression on position and rank, cross-fitted by request.
    """
    from winnow.pipeline.explore import rank_marginals

    meta: dict[str, tuple[int, dict[str, int]]] = {}
    for imp in impressions:
        if surface is not None and imp.get("surface") != surface:
            continue
        items = imp["items"]
        listed = int((imp.get("context") or {}).get("n_ranked") or len(items))
        meta[imp["request_id"]] = (listed, {str(it.get("item_id")): int(it.get("rank", it.get("position", 0)))
                                              for it in items})
    rows = outcomes[outcomes["request_id"].isin(meta)]
    if rows.empty:
        raise DataError("no impressions to evaluate" + (f" on surface {surface!r}" if surface else ""),
                        source="impression log")
    req = rows["request_id"].to_numpy()
    units, unit = np.unique(req, return_inverse=True)
    pos = rows["position"].to_numpy(np.int64)
    rank = np.array([meta[r][1].get(str(i), p) for r, i, p in zip(req, rows["item_id"], pos)], np.int64)
    n_ranked = np.array([meta[r][0] for r in req], np.int64)
    k = int(pos.max()) + 1
    prop = pd.to_numeric(rows["propensity"], errors="coerce").fillna(1.0).to_numpy(np.float64)
    reward = np.array([float(any(e in reward_events for e in ev)) for ev in rows["events"]])
    mats: dict[int, np.ndarray] = {}
    target_prob = np.zeros(len(rows))
    for i in range(len(rows)):
        n = int(n_ranked[i])
        if n not in mats:
            mats[n] = rank_marginals(target, n, k)
        m = mats[n]
        target_prob[i] = m[pos[i], rank[i]] if pos[i] < m.shape[0] and rank[i] < m.shape[1] else 0.0

    def feats(p: np.ndarray, r: np.ndarray) -> np.ndarray:
        x = np.zeros((len(p), k + 2))
        x[np.arange(len(p)), p] = 1.0
        x[:, k] = np.log1p(r)
        x[:, k + 1] = r < k
        return x

    unit_n = np.zeros(len(units), np.int64)
    unit_n[unit] = n_ranked
    ev_u, ev_p, ev_r, ev_w = [], [], [], []
    for u, n in enumerate(unit_n.tolist()):
        jj, rr = np.nonzero(mats[n])
        ev_u.append(np.full(len(jj), u))
        ev_p.append(jj)
        ev_r.append(rr)
        ev_w.append(mats[int(n)][jj, rr])
    eu, ep, er, ew = (np.concatenate(a) for a in (ev_u, ev_p, ev_r, ev_w))
    q_log, q_eval = cross_fit_rewards(feats(pos, rank), reward, units=unit, x_eval=feats(ep, er),
                                      eval_units=eu, n_folds=folds, seed=seed)
    dm = direct_method(eu, ew, q_eval, units=np.arange(len(units)))
    return LoggedSlates(unit=unit, position=pos, reward=reward, pscore=prop, target=target_prob,
                        q_logged=q_log, dm=dm)
