"""The always-valid sequential tests of a canary: a two-sample mSPRT for its primary metric
(``msprt``) and for its guardrails' rates per request (``ratio_msprt``), and a sequential
multinomial test for sample-ratio mismatch (``srm_test``).

Mixture sequential probability ratio test with a normal mixing distribution, in the form of
Johari, Koomen, Pekelis, Walsh, "Always Valid Inference: Continuous Monitoring of A/B Tests",
Operations Research 70(3), 2022 (arXiv:1512.04922), section 4 ("two-stream normal data"):
with d the difference of the arms' means (challenger - champion) and V its variance
(s_c^2 / n_c + s_t^2 / n_t), the mixture likelihood ratio of H0: difference = theta0 against
a N(theta0, tau^2) mixture of alternatives is

    Lambda(theta0) = phi(d; theta0, V + tau^2) / phi(d; theta0, V)
                   = sqrt(V / (V + tau^2)) * exp(tau^2 (d - theta0)^2 / (2 V (V + tau^2)))

(phi = the normal density; computed here with scipy.stats.norm.logpdf). Rejecting H0 the first
time Lambda >= 1 / alpha keeps the type-I error <= alpha however often one looks (Ville's
inequality on the mixture martingale), and inverting it gives a confidence sequence, valid
simultaneously at every look:

    { theta : Lambda(theta) < 1/alpha } = d -/+ sqrt(V (V + tau^2) / tau^2 * (2 log(1/alpha) + log((V + tau^2) / V)))

The always-valid p-value at a look is min(1, 1 / Lambda(theta0)). V uses the sample variances
(the paper's large-sample plug-in); for a rate per request (the guardrails' error, empty-slate
and fallback rates, ``ratio_msprt``) V is the delta-method variance of a ratio of sums clustered
by user (``ratio_variance``); ``tests/unit/test_rollout_sequential.py`` checks the false
positive rate under A/A with a seeded simulator stays <= alpha over many runs with a look
after every batch of users.

Sample-ratio mismatch (``srm_test``): Lindon & Malek, "Anytime-Valid Inference for Multinomial
Count Data", NeurIPS 2022 (arXiv:2011.03567). Users arrive one at a time and fall in arm i with
probability theta0_i under H0 (the step's share). With a Dirichlet(a) mixture over the
alternatives, a_i = ``SRM_PRIOR`` x theta0_i, the Bayes factor of counts x (n = sum x) is

    BF_n = Gamma(A) / Gamma(A + n) * prod_i Gamma(a_i + x_i) / Gamma(a_i) / prod_i theta0_i^x_i,
    A = sum_i a_i

(scipy.special.gammaln), a non-negative martingale under H0 with mean 1, so by Ville's
inequality P(BF_n >= 1/alpha at any n) <= alpha: the always-valid p-value min(1, 1/BF_n) may be
checked after every user. It depends on the counts only, so a look at any time is the martingale
at that n. A chi-square re-run on cumulative counts at every look is not valid (its false
alarms grow with the number of looks); ``tests/unit/test_rollout_srm.py`` measures both.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import special, stats

MIN_PER_ARM = 2
SRM_PRIOR = 100.0  # Dirichlet concentration: a prior worth 100 users at the expected split


@dataclass(frozen=True)
class SequentialResult:
    """One look: means, difference (challenger - champion), the confidence sequence's interval
    at this look, the log mixture likelihood ratio at theta0 = 0 and the always-valid p-value."""

    n_control: int
    n_treatment: int
    mean_control: float
    mean_treatment: float
    diff: float
    low: float
    high: float
    log_lr: float
    p_value: float
    alpha: float
    tau: float

    @property
    def significant(self) -> bool:
        """0 lies outside the interval (Lambda(0) >= 1/alpha)."""
        return self.low > 0.0 or self.high < 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _look(n_c: int, n_t: int, mean_c: float, mean_t: float, v: float, *, alpha: float, tau: float,
          theta0: float) -> SequentialResult:
    """The mixture test and confidence sequence for difference ``mean_t - mean_c`` of variance
    ``v`` (module docstring)."""
    d = mean_t - mean_c
    v = max(v, 1e-12)  # both arms constant: a tiny variance, not a division by zero
    tau2 = tau * tau
    log_lr = float(stats.norm.logpdf(d, loc=theta0, scale=math.sqrt(v + tau2))
                   - stats.norm.logpdf(d, loc=theta0, scale=math.sqrt(v)))
    radius = math.sqrt(v * (v + tau2) / tau2 * (2.0 * math.log(1.0 / alpha) + math.log((v + tau2) / v)))
    return SequentialResult(n_control=n_c, n_treatment=n_t, mean_control=mean_c, mean_treatment=mean_t,
                            diff=d, low=d - radius, high=d + radius, log_lr=log_lr,
                            p_value=float(min(1.0, math.exp(-log_lr))), alpha=alpha, tau=tau)


def msprt(control: np.ndarray, treatment: np.ndarray, *, alpha: float, tau: float,
          theta0: float = 0.0) -> SequentialResult | None:
    """The mSPRT look at per-unit values of both arms; None with fewer than MIN_PER_ARM units
    in an arm (nothing to say yet)."""
    c = np.asarray(control, np.float64)
    t = np.asarray(treatment, np.float64)
    c, t = c[np.isfinite(c)], t[np.isfinite(t)]
    if len(c) < MIN_PER_ARM or len(t) < MIN_PER_ARM:
        return None
    v = float(c.var(ddof=1) / len(c) + t.var(ddof=1) / len(t))
    return _look(len(c), len(t), float(c.mean()), float(t.mean()), v, alpha=alpha, tau=tau, theta0=theta0)


def ratio_variance(hits: np.ndarray, trials: np.ndarray) -> tuple[float, float]:
    """(R, Var R) of the ratio metric R = sum(hits) / sum(trials) over units (users) that each
    contribute ``trials`` requests of which ``hits`` count: the delta-method variance of a ratio
    of sums clustered by unit (Deng, Knoblich, Lu, "Applying the Delta Method in Metric
    Analytics", KDD 2018), sum_u (hits_u - R trials_u)^2 / sum(trials)^2 x U / (U - 1). A user's
    requests are not independent (the same user is a cold start, or an error, on every request),
    so a binomial variance over requests would understate the noise of a rate per request."""
    x = np.asarray(hits, np.float64)
    n = np.asarray(trials, np.float64)
    units, total = len(n), float(n.sum())
    if units < MIN_PER_ARM or total <= 0:
        raise ValueError(f"ratio_variance: {units} units with {total} trials: needs {MIN_PER_ARM} units and a trial")
    r = float(x.sum()) / total
    return r, float(((x - r * n) ** 2).sum()) / (total * total) * units / (units - 1)


def ratio_msprt(control: tuple[np.ndarray, np.ndarray], treatment: tuple[np.ndarray, np.ndarray], *,
                alpha: float, tau: float, theta0: float = 0.0) -> SequentialResult | None:
    """The mSPRT look at the difference of two rates per request (treatment - control), each
    given per unit as (hits, trials) arrays and judged by ``ratio_variance``; None while an arm
    has fewer than MIN_PER_ARM units with a request. ``theta0`` is the null difference (the
    guardrails test H0: increase <= the allowed increase; the interval does not depend on it)."""
    arms = []
    for hits, trials in (control, treatment):
        x, n = np.asarray(hits, np.float64), np.asarray(trials, np.float64)
        if x.shape != n.shape or (x < 0).any() or (x > n).any():
            raise ValueError(f"ratio_msprt: hits {x[:5].tolist()}... must be per-unit counts <= trials {n[:5].tolist()}...")
        keep = n > 0
        if int(keep.sum()) < MIN_PER_ARM:
            return None
        arms.append((int(keep.sum()), *ratio_variance(x[keep], n[keep])))
    (n_c, r_c, v_c), (n_t, r_t, v_t) = arms
    return _look(n_c, n_t, r_c, r_t, v_c + v_t, alpha=alpha, tau=tau, theta0=theta0)


@dataclass(frozen=True)
class SrmResult:
    """One look at the arms' assignment counts against the expected shares: the log Bayes factor
    of the Dirichlet-multinomial mixture against H0 and the always-valid p-value min(1, 1/BF)."""

    observed: list[int]
    expected: list[float]
    log_bf: float
    p_value: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def srm_test(counts: np.ndarray | list[int], probs: np.ndarray | list[float], *,
             prior: float = SRM_PRIOR) -> SrmResult:
    """Sequential multinomial test of ``counts`` (users per arm so far) against ``probs`` (each
    arm's expected share, summing to 1, all > 0); ValueError naming the bad input otherwise."""
    x = np.asarray(counts, np.float64)
    p = np.asarray(probs, np.float64)
    if x.shape != p.shape or x.ndim != 1 or len(x) < 2:
        raise ValueError(f"srm_test: counts {x.tolist()} and shares {p.tolist()} must be two equal-length lists")
    if (x < 0).any() or not np.isfinite(x).all():
        raise ValueError(f"srm_test: counts {x.tolist()} must be non-negative")
    if (p <= 0).any() or abs(float(p.sum()) - 1.0) > 1e-9:
        raise ValueError(f"srm_test: shares {p.tolist()} must be positive and sum to 1")
    a = prior * p
    n = float(x.sum())
    log_bf = float(special.gammaln(a.sum()) - special.gammaln(a.sum() + n)
                   + (special.gammaln(a + x) - special.gammaln(a)).sum() - (x * np.log(p)).sum())
    return SrmResult(observed=[int(v) for v in x], expected=(p * n).tolist(), log_bf=log_bf,
                     p_value=float(min(1.0, math.exp(-log_bf))) if log_bf > -700 else 1.0)
