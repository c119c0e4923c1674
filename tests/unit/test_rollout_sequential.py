"""The rollout's sequential test (winnow.rollout.sequential) and slate comparison (compare)."""

from __future__ import annotations

import numpy as np
import pytest

from winnow.rollout.compare import compare_slates, overlap_at_k, rbo
from winnow.rollout.sequential import msprt

ALPHA = 0.05


def _users(rng: np.random.Generator, n: int, ctr: float) -> np.ndarray:
    """Per-user CTR of n users shown 5-30 items each, clicks ~ Binomial(shown, ctr)."""
    shown = rng.integers(5, 31, n)
    return rng.binomial(shown, ctr) / shown


def _ever_rejects(rng: np.random.Generator, ctr_c: float, ctr_t: float, *, looks: int, batch: int) -> bool:
    c = np.empty(0)
    t = np.empty(0)
    for _ in range(looks):  # a look after every batch: continuous monitoring
        c = np.concatenate([c, _users(rng, batch, ctr_c)])
        t = np.concatenate([t, _users(rng, batch, ctr_t)])
        res = msprt(c, t, alpha=ALPHA, tau=0.05)
        if res is not None and res.significant:
            return True
    return False


def test_false_positive_rate_under_aa_stays_below_alpha() -> None:
    """A/A: both arms CTR 0.1; 400 runs of 40 looks (20..800 users per arm). A fixed-horizon test
    checked this often would reject far more than 5% of the runs; the mSPRT must not."""
    rng = np.random.default_rng(20260115)
    runs = 400
    rejected = sum(_ever_rejects(rng, 0.1, 0.1, looks=40, batch=20) for _ in range(runs))
    rate = rejected / runs
    assert rate <= ALPHA, f"A/A false-positive rate {rate:.3f} over {runs} runs exceeds alpha {ALPHA}"


def test_naive_repeated_t_test_would_fail_the_same_check() -> None:
    """The simulator is sharp enough to catch peeking: Welch at 5% checked at every look rejects
    well over alpha of the same A/A runs (so the test above is not passing by weakness)."""
    from scipy import stats

    rng = np.random.default_rng(20260115)
    rejected = 0
    for _ in range(200):
        c, t = np.empty(0), np.empty(0)
        for _ in range(40):
            c = np.concatenate([c, _users(rng, 20, 0.1)])
            t = np.concatenate([t, _users(rng, 20, 0.1)])
            if stats.ttest_ind(t, c, equal_var=False).pvalue < ALPHA:
                rejected += 1
                break
    assert rejected / 200 > 2 * ALPHA


def test_detects_a_real_difference_and_its_sign() -> None:
    rng = np.random.default_rng(3)
    worse = msprt(_users(rng, 1500, 0.10), _users(rng, 1500, 0.06), alpha=ALPHA, tau=0.05)
    assert worse is not None and worse.significant and worse.high < 0 and worse.p_value < ALPHA
    better = msprt(_users(rng, 1500, 0.10), _users(rng, 1500, 0.14), alpha=ALPHA, tau=0.05)
    assert better is not None and better.low > 0
    assert msprt(np.array([0.1]), _users(rng, 10, 0.1), alpha=ALPHA, tau=0.05) is None


def test_interval_is_the_set_where_the_likelihood_ratio_stays_below_one_over_alpha() -> None:
    from scipy import stats

    rng = np.random.default_rng(5)
    c, t = _users(rng, 300, 0.1), _users(rng, 300, 0.12)
    res = msprt(c, t, alpha=ALPHA, tau=0.05)
    v = c.var(ddof=1) / len(c) + t.var(ddof=1) / len(t)
    for theta, inside in ((res.low + 1e-9, True), (res.high - 1e-9, True), (res.low - 1e-6, False)):
        log_lr = (stats.norm.logpdf(res.diff, theta, np.sqrt(v + 0.05**2))
                  - stats.norm.logpdf(res.diff, theta, np.sqrt(v)))
        assert (log_lr < np.log(1 / ALPHA)) == inside


def test_overlap_and_rbo() -> None:
    a = ["a", "b", "c", "d"]
    assert overlap_at_k(a, a, 4) == 1.0 and rbo(a, a) == pytest.approx(1.0)
    assert overlap_at_k(a, ["w", "x", "y", "z"], 4) == 0.0 and rbo(a, ["w", "x", "y", "z"]) == 0.0
    swapped = rbo(a, ["b", "a", "c", "d"])
    tail = rbo(a, ["a", "b", "d", "c"])
    assert 0 < swapped < tail < 1  # disagreement at the top costs more than at the bottom
    rec = compare_slates(["a", "b", "c"], ["a", "x", "c"], k=3, champion_scores=[3, 2, 1], challenger_scores=[])
    assert rec["overlap"] == pytest.approx(2 / 3) and rec["only_champion"] == rec["only_challenger"] == 0.25
    assert rec["champion_scores"]["mean"] == 2.0 and rec["challenger_scores"]["mean"] is None
