"""The always-valid sequential test of a canary's primary metric: a two-sample mSPRT.

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

The always-valid p-value at a look is min(1, 1 / Lambda(0)). V uses the sample variances
(the paper's large-sample plug-in); ``tests/unit/test_rollout_sequential.py`` checks the false
positive rate under A/A with a seeded simulator stays <= alpha over many runs with a look
after every batch of users.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import stats

MIN_PER_ARM = 2


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


def msprt(control: np.ndarray, treatment: np.ndarray, *, alpha: float, tau: float,
          theta0: float = 0.0) -> SequentialResult | None:
    """The mSPRT look at per-unit values of both arms; None with fewer than MIN_PER_ARM units
    in an arm (nothing to say yet)."""
    c = np.asarray(control, np.float64)
    t = np.asarray(treatment, np.float64)
    c, t = c[np.isfinite(c)], t[np.isfinite(t)]
    if len(c) < MIN_PER_ARM or len(t) < MIN_PER_ARM:
        return None
    d = float(t.mean() - c.mean())
    v = float(c.var(ddof=1) / len(c) + t.var(ddof=1) / len(t))
    v = max(v, 1e-12)  # both arms constant: a tiny variance, not a division by zero
    tau2 = tau * tau
    log_lr = float(stats.norm.logpdf(d, loc=theta0, scale=math.sqrt(v + tau2))
                   - stats.norm.logpdf(d, loc=theta0, scale=math.sqrt(v)))
    radius = math.sqrt(v * (v + tau2) / tau2 * (2.0 * math.log(1.0 / alpha) + math.log((v + tau2) / v)))
    return SequentialResult(n_control=len(c), n_treatment=len(t), mean_control=float(c.mean()),
                            mean_treatment=float(t.mean()), diff=d, low=d - radius, high=d + radius,
                            log_lr=log_lr, p_value=float(min(1.0, math.exp(-log_lr))), alpha=alpha, tau=tau)
