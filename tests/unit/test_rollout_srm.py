"""Sample-ratio mismatch of a canary's assignment, checked at every look (winnow.rollout.sequential
.srm_test, Lindon & Malek 2022): under A/A the share of seeded runs that ever halt stays <= alpha
however many looks, where a chi-square re-run on the cumulative counts at the same looks halts far
more often; a real imbalance halts; the decision rule (decide.evaluate) uses it."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import special, stats

from winnow.rollout.sequential import srm_test

ALPHA = 0.05
RUNS, LOOKS, BATCH = 300, 40, 40  # 40 looks, 40..1600 users per run


def _counts(rng: np.random.Generator, share: float, true_share: float) -> np.ndarray:
    """Cumulative (champion, challenger) users at each look: LOOKS x 2."""
    chall = np.cumsum(rng.binomial(BATCH, true_share, LOOKS))
    return np.stack([np.arange(1, LOOKS + 1) * BATCH - chall, chall], axis=1)


def _ever_halts(counts: np.ndarray, share: float, alpha: float) -> bool:
    return any(srm_test(c, [1.0 - share, share]).p_value < alpha for c in counts)


@pytest.mark.parametrize("share", [0.05, 0.3, 0.5])
def test_false_halt_rate_under_aa_with_many_looks_stays_below_alpha(share: float) -> None:
    rng = np.random.default_rng(20261205)
    halted = sum(_ever_halts(_counts(rng, share, share), share, ALPHA) for _ in range(RUNS))
    assert halted / RUNS <= ALPHA, f"share {share}: {halted} of {RUNS} A/A runs halted (alpha {ALPHA})"


def test_chi_square_rerun_at_every_look_would_fail_the_same_check() -> None:
    """The simulator is sharp enough to catch peeking (so the test above does not pass by weakness)."""
    rng = np.random.default_rng(20261205)
    share = 0.3
    halted = 0
    for _ in range(RUNS):
        c = _counts(rng, share, share).astype(np.float64)
        expected = c.sum(axis=1, keepdims=True) * np.array([1.0 - share, share])
        p = stats.chi2.sf(((c - expected) ** 2 / expected).sum(axis=1), df=1)
        halted += bool((p < ALPHA).any())
    assert halted / RUNS > 3 * ALPHA


def test_a_real_imbalance_halts_at_the_configured_threshold() -> None:
    rng = np.random.default_rng(7)
    # 50% share but 40% of the users reach the challenger (e.g. its requests are lost from the log)
    halted = [_ever_halts(_counts(rng, 0.5, 0.4), 0.5, 0.001) for _ in range(50)]
    assert all(halted)
    assert not srm_test([5000, 5000], [0.5, 0.5]).p_value < 0.5  # an exact split is no evidence


def test_bayes_factor_is_the_dirichlet_multinomial_mixture() -> None:
    x, p, prior = np.array([30.0, 12.0]), np.array([0.7, 0.3]), 100.0
    a = prior * p
    log_bf = (special.gammaln(a.sum()) - special.gammaln(a.sum() + x.sum())
              + (special.gammaln(a + x) - special.gammaln(a)).sum() - (x * np.log(p)).sum())
    res = srm_test(x, p, prior=prior)
    assert res.log_bf == pytest.approx(log_bf) and res.observed == [30, 12]
    assert res.expected == pytest.approx([29.4, 12.6]) and res.p_value == pytest.approx(min(1.0, np.exp(-log_bf)))


@pytest.mark.parametrize(("counts", "probs", "match"), [
    ([1, 2], [0.5, 0.6], "sum to 1"), ([1, -2], [0.5, 0.5], "non-negative"), ([1, 2, 3], [0.5, 0.5], "equal-length")])
def test_bad_input_is_named(counts: list[int], probs: list[float], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        srm_test(counts, probs)
