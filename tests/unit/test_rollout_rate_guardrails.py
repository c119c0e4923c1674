"""The canary's rate guardrails (error, empty-slate, fallback rate per request) judged by an
always-valid interval on the difference of the arms' rates, with the noise clustered by user
(winnow.rollout.sequential.ratio_msprt; winnow.rollout.decide.rate_tests)."""

from __future__ import annotations

import numpy as np
import pytest

from winnow.data.rollouts import Rollout
from winnow.rollout.arms import RATE_COLUMNS, Arm
from winnow.rollout.assign import CHALLENGER, CHAMPION
from winnow.rollout.decide import evaluate
from winnow.rollout.sequential import ratio_msprt, ratio_variance

ALPHA = 0.05


def _users(rng: np.random.Generator, n: int, rate: float) -> tuple[np.ndarray, np.ndarray]:
    """n users of 1-6 requests each; a user's requests mostly share one outcome (a known user
    never falls back, an unknown one on every request): propensity ~ Beta with mean ``rate``."""
    trials = rng.integers(1, 7, n)
    p = rng.beta(rate * 0.3, (1 - rate) * 0.3, n)
    return rng.binomial(trials, p), trials


def _per_request(hits: np.ndarray, trials: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The same requests as if each were its own user (what ignoring the clustering assumes;
    their order does not matter to the ratio or its variance)."""
    flat = np.r_[np.ones(int(hits.sum())), np.zeros(int(trials.sum() - hits.sum()))]
    return flat, np.ones_like(flat)


def _ever_breaches(rng: np.random.Generator, *, clustered: bool, looks: int = 30, batch: int = 10) -> bool:
    c = (np.empty(0, np.int64), np.empty(0, np.int64))
    t = (np.empty(0, np.int64), np.empty(0, np.int64))
    for _ in range(looks):  # a look after every batch of users: continuous monitoring
        c = tuple(np.concatenate(pair) for pair in zip(c, _users(rng, batch, 0.6), strict=True))
        t = tuple(np.concatenate(pair) for pair in zip(t, _users(rng, batch, 0.6), strict=True))
        arms = (c, t) if clustered else (_per_request(*c), _per_request(*t))
        look = ratio_msprt(*arms, alpha=ALPHA, tau=0.1, theta0=0.0)
        if look is not None and look.low > 0.0:  # the strictest guardrail: no increase allowed
            return True
    return False


def test_false_breach_rate_under_aa_stays_below_alpha_and_ignoring_users_would_not() -> None:
    """A/A with rates that cluster by user (as a fallback does): 300 runs of 30 looks, 10..300
    users per arm. Judged per user the guardrail breaches <= alpha of the runs; the same looks
    treating every request as independent breach several times as often."""
    rng = np.random.default_rng(20261206)
    runs = 300
    clustered = sum(_ever_breaches(rng, clustered=True) for _ in range(runs)) / runs
    naive = sum(_ever_breaches(rng, clustered=False) for _ in range(runs)) / runs
    assert clustered <= ALPHA, f"A/A false breach rate {clustered:.3f} over {runs} runs exceeds alpha {ALPHA}"
    assert naive > 2 * ALPHA, f"per-request judging breached only {naive:.3f}: the simulator is too gentle"


def test_detects_a_real_increase_above_the_limit() -> None:
    rng = np.random.default_rng(4)
    worse = ratio_msprt(_users(rng, 600, 0.3), _users(rng, 600, 0.6), alpha=ALPHA, tau=0.1, theta0=0.1)
    assert worse is not None and worse.low > 0.1 and worse.p_value < ALPHA
    assert ratio_msprt((np.array([1]), np.array([2])), _users(rng, 10, 0.5), alpha=ALPHA, tau=0.1) is None


def test_ratio_variance_is_the_clustered_delta_method() -> None:
    hits, trials = np.array([2, 0, 3, 1]), np.array([2, 1, 4, 3])
    r, v = ratio_variance(hits, trials)
    assert r == pytest.approx(6 / 10)
    resid = hits - r * trials
    assert v == pytest.approx((resid**2).sum() / 100 * 4 / 3)
    with pytest.raises(ValueError, match="1 units"):
        ratio_variance(np.array([1]), np.array([2]))
    with pytest.raises(ValueError, match="must be per-unit counts"):
        ratio_msprt((np.array([3, 0]), np.array([2, 1])), (hits, trials), alpha=ALPHA, tau=0.1)


GUARDRAILS = {"min_requests": 50, "max_error_rate_increase": 0.01, "max_empty_rate_increase": 0.05,
              "max_fallback_rate_increase": 0.10, "p99_ratio": 2.0, "p99_floor_ms": 50.0,
              "min_coverage_ratio": 0.0, "alpha": 0.01, "tau": 0.1}


def _rollout() -> Rollout:
    return Rollout(id=1, state="canary", revision=1, started=0, challenger="c", champion="a", mode="canary",
                   plan=(50, 100), step=0, step_started=0,
                   params={"guardrails": GUARDRAILS, "srm_p": 1e-12, "step_s": 3600, "min_exposed": 10})


def _arm(per_user: list[tuple[int, int, int, int]]) -> Arm:
    """An arm from per-user (requests, errors, empty, fallbacks) rows (RATE_COLUMNS)."""
    table = np.array(per_user, np.int64).reshape(-1, len(RATE_COLUMNS))
    return Arm(latency_ms=[5.0] * int(table[:, 0].sum()), users={f"u{i}" for i in range(len(table))},
               values=np.zeros(len(table)), per_user=table)


def test_a_fallback_gap_drawn_by_which_users_hashed_where_does_not_roll_back() -> None:
    """The stop-19/20 CI failure: the challenger arm's fallback rate 0.66 over 183 requests of 63
    users against the champion's 0.56 over 668 requests -- the raw rates differ by the allowed
    0.10, but by which users the hash drew (a user's requests all fall back or none do)."""
    champ = [(3, 0, 0, 3)] * 125 + [(3, 0, 0, 0)] * 98 + [(2, 0, 0, 0)] * 1        # 668 requests, 375 fallbacks
    chall = [(3, 0, 0, 3)] * 40 + [(3, 0, 0, 0)] * 21 + [(0, 0, 0, 0)] * 2          # 183 requests, 120 fallbacks
    arms = {CHAMPION: _arm(champ), CHALLENGER: _arm(chall)}
    assert arms[CHALLENGER].fallback / arms[CHALLENGER].requests - arms[CHAMPION].fallback / arms[CHAMPION].requests > 0.09
    verdict, evidence = evaluate(_rollout(), arms, 0, now=1.0)
    assert verdict is None, evidence
    look = evidence["rate_tests"]["fallback_rate"]
    assert look["limit"] == 0.10 and not look["breach"] and look["low"] < 0.10 < look["high"]


def test_a_broken_challenger_breaches_at_the_first_check() -> None:
    """Every challenger request errors (the champion served instead): rolled back as soon as the
    challenger has served ``min_requests``, naming the rate and its interval."""
    champ = _arm([(4, 0, 0, 0)] * 100)
    broken = {CHAMPION: champ, CHALLENGER: _arm([(2, 2, 0, 0)] * 25)}
    verdict, evidence = evaluate(_rollout(), broken, 0, now=1.0)
    assert verdict is not None and (verdict.action, verdict.rule) == ("roll_back", "guardrail:error_rate")
    assert evidence["rate_tests"]["error_rate"]["low"] > 0.01 and evidence["breaches"] == ["error_rate"]
    early = {CHAMPION: champ, CHALLENGER: _arm([(2, 2, 0, 0)] * 24)}  # 48 < min_requests: not judged yet
    assert evaluate(_rollout(), early, 0, now=1.0)[0] is None
    # errors on a third of its users' requests: a real increase, but 50 requests cannot show it
    # is above 1 point at alpha 0.01; 2000 requests can
    few = {CHAMPION: champ, CHALLENGER: _arm([(2, 2, 0, 0)] * 3 + [(2, 0, 0, 0)] * 22)}
    assert evaluate(_rollout(), few, 0, now=1.0)[0] is None
    many = {CHAMPION: champ, CHALLENGER: _arm([(2, 2, 0, 0)] * 120 + [(2, 0, 0, 0)] * 880)}
    verdict, _ = evaluate(_rollout(), many, 0, now=1.0)
    assert verdict is not None and verdict.rule == "guardrail:error_rate"


def test_status_shows_each_rate_s_interval_and_the_breach() -> None:
    from winnow.rollout.report import format_report

    broken = {CHAMPION: _arm([(4, 0, 0, 0)] * 100), CHALLENGER: _arm([(2, 2, 0, 0)] * 25)}
    r = _rollout()
    verdict, evidence = evaluate(r, broken, 0, now=1.0)
    assert verdict is not None
    rep = {"rollout": {**r.to_dict(), "running": True},
           "now": {"due": {"action": verdict.action, "rule": verdict.rule}, "evidence": evidence}}
    text = format_report(rep)
    error_line = next(line for line in text.splitlines() if line.strip().startswith("error_rate"))
    assert "increase +1.0000" in error_line and "allowed +0.0100" in error_line and error_line.endswith("BREACH")
    empty_line = next(line for line in text.splitlines() if line.strip().startswith("empty_rate"))
    assert "BREACH" not in empty_line and "due now: roll_back (guardrail:error_rate)" in text
