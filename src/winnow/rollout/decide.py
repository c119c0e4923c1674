"""A canary's decisions, from each arm's measurements (winnow.rollout.arms), in this order:

1. guardrails (once the challenger served ``guardrails.min_requests``): its error, empty-slate or
   fallback rate per request above the champion's by more than the allowed increase, judged
   by an always-valid interval on the difference of the rates (``rate_tests``: the interval's
   lower bound above the allowed increase, at ``guardrails.alpha``, noise clustered by user: a
   user's requests are not independent), its p99 latency
   above max(champion p99 x ``p99_ratio``, ``p99_floor_ms``), or its catalog coverage below
   ``min_coverage_ratio`` x the champion's -> ``roll_back`` at once. Coverage = distinct items
   served over the rollout's window at EQUAL request counts (the arms' shares differ, and
   distinct items grow with requests): the challenger's n requests against n of the champion's
   spread evenly over its window, n capped at ``COVERAGE_MAX`` per arm (``coverage``);
2. sample-ratio mismatch: users newly assigned in this step per arm against the step's share,
   by the always-valid sequential multinomial test (winnow.rollout.sequential.srm_test; judged
   once the step has ``srm_min_users`` users), always-valid p < ``srm_p`` -> ``halt`` (assignment
   or logging is broken: no verdict can be trusted). Valid however often it is checked; each step
   is its own test (its own users), so a rollout of s steps halts by chance with probability
   at most s x ``srm_p``;
3. the primary metric by the always-valid mSPRT (winnow.rollout.sequential): the interval of
   challenger - champion entirely below 0 -> ``roll_back`` (significantly worse);
4. at the end of a step (``step_s`` elapsed and ``min_exposed`` challenger users): the interval's
   lower bound above -``margin`` x champion mean (non-inferior) -> ``next_step`` (the step that
   reaches 100% promotes); otherwise the step waits for more evidence;
5. a step still waiting ``max_step_s`` after it began (when set) -> ``roll_back``
   (``step_timeout``: the challenger could not be shown non-inferior in the time allowed).

``evaluate`` returns (verdict or None, evidence); the evidence is stored with the decision and
shown by ``winnow rollout status``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from winnow.data.rollouts import Rollout
from winnow.rollout.arms import Arm
from winnow.rollout.assign import CHALLENGER, CHAMPION
from winnow.rollout.sequential import msprt, ratio_msprt, srm_test


@dataclass(frozen=True)
class Verdict:
    action: str  # roll_back | halt | next_step
    rule: str


RATE_LIMITS = (("error_rate", "max_error_rate_increase"), ("empty_rate", "max_empty_rate_increase"),
               ("fallback_rate", "max_fallback_rate_increase"))


def rate_tests(r: Rollout, arms: dict[str, Arm]) -> dict[str, dict[str, Any]]:
    """Each rate guardrail's always-valid look at challenger - champion (sequential.ratio_msprt,
    H0: the increase is at most the allowed one), with ``limit`` and ``breach`` (the interval's
    lower bound above the limit); a rate is left out while an arm has fewer than two users."""
    g = r.params.get("guardrails", {})
    out = {}
    for rate, key in RATE_LIMITS:
        limit = float(g.get(key, 0.0))
        look = ratio_msprt(arms[CHAMPION].rate_counts(rate), arms[CHALLENGER].rate_counts(rate),
                           alpha=g.get("alpha", 0.01), tau=g.get("tau", 0.1), theta0=limit)
        if look is not None:
            out[rate] = {**look.to_dict(), "limit": limit, "breach": look.low > limit}
    return out


def _guardrails(r: Rollout, champ: dict[str, Any], chall: dict[str, Any], cover: dict[str, Any] | None,
                tests: dict[str, dict[str, Any]]) -> list[str]:
    g = r.params.get("guardrails", {})
    if chall["requests"] < g.get("min_requests", 50):
        return []
    breaches = [rate for rate, _ in RATE_LIMITS if rate in tests and tests[rate]["breach"]]
    if chall["p99_ms"] is not None:
        allowed = max((champ["p99_ms"] or 0.0) * g.get("p99_ratio", 2.0), g.get("p99_floor_ms", 50.0))
        if chall["p99_ms"] > allowed:
            breaches.append("p99_ms")
    if cover is not None and cover["ratio"] is not None and cover["ratio"] < g.get("min_coverage_ratio", 0.0):
        breaches.append("coverage")
    return breaches


COVERAGE_MAX = 20_000  # requests per arm compared for coverage (evenly spaced over each arm's window)


def coverage(arms: dict[str, Arm]) -> dict[str, Any] | None:
    """Distinct items each arm served at equal request counts: n = min(requests of either arm,
    COVERAGE_MAX) of each arm's requests, taken evenly over its window (deterministic; below the
    cap every challenger request); ratio challenger / champion (None when the champion served
    no item). None when an arm served no request. The cap keeps a check's cost bounded."""
    champ, chall = arms[CHAMPION].slates, arms[CHALLENGER].slates
    n = min(len(champ), len(chall), COVERAGE_MAX)
    if n == 0:
        return None

    def spread(slates: list[tuple[str, ...]]) -> np.ndarray:
        return np.unique(np.linspace(0, len(slates) - 1, n).round().astype(np.int64))

    ch = len({i for k in spread(champ) for i in champ[k]})
    cl = len({i for k in spread(chall) for i in chall[k]})
    return {"requests": n, "champion_items": ch, "challenger_items": cl, "ratio": cl / ch if ch else None}


def srm(r: Rollout, arms: dict[str, Arm]) -> dict[str, Any] | None:
    """The sequential SRM test of this step's newly assigned users per arm against the step's
    share (None when there are too few to judge, or one arm has the whole share)."""
    share = r.share
    counts = [arms[CHAMPION].new_in_step, arms[CHALLENGER].new_in_step]
    if not 0.0 < share < 1.0 or sum(counts) < r.params.get("srm_min_users", 100):
        return None
    return {"test": "sequential_multinomial", **srm_test(counts, [1.0 - share, share]).to_dict()}


def evaluate(r: Rollout, arms: dict[str, Arm], switched: int, *, now: float) -> tuple[Verdict | None, dict[str, Any]]:
    """The decision due now for canary ``r`` (None: keep going) and the evidence behind it."""
    champ, chall = arms[CHAMPION].rates(), arms[CHALLENGER].rates()
    evidence: dict[str, Any] = {"share": r.share, "step": r.step, "arms": {CHAMPION: champ, CHALLENGER: chall},
                                "switched_users": switched}
    cover = coverage(arms)
    evidence["coverage"] = cover
    tests = rate_tests(r, arms)
    evidence["rate_tests"] = tests
    breaches = _guardrails(r, champ, chall, cover, tests)
    if breaches:
        evidence["breaches"] = breaches
        return Verdict("roll_back", "guardrail:" + ",".join(breaches)), evidence
    mismatch = srm(r, arms)
    evidence["srm"] = mismatch
    if mismatch is not None and mismatch["p_value"] < r.params.get("srm_p", 0.001):
        return Verdict("halt", "srm"), evidence
    test = msprt(arms[CHAMPION].values, arms[CHALLENGER].values, alpha=r.params.get("alpha", 0.05),
                 tau=r.params.get("tau", 0.05))
    evidence["test"] = test.to_dict() if test is not None else None
    if test is not None and test.high < 0.0:
        return Verdict("roll_back", "sequential:worse"), evidence
    elapsed = now - r.step_started
    exposed = chall["exposed_users"]
    evidence["step_elapsed_s"] = elapsed
    if elapsed < r.params.get("step_s", 0) or exposed < r.params.get("min_exposed", 1):
        evidence["waiting"] = "step duration" if elapsed < r.params.get("step_s", 0) else "exposed users"
    elif test is None:
        evidence["waiting"] = "too few users with a metric in an arm"
    else:
        bound = -r.params.get("margin", 0.05) * test.mean_control
        evidence["non_inferiority_bound"] = bound
        if test.low > bound:
            return Verdict("next_step", "step_complete:non_inferior"), evidence
        evidence["waiting"] = "inconclusive: interval's lower bound below the non-inferiority bound"
    limit = float(r.params.get("max_step_s") or 0.0)
    if limit and elapsed >= limit:
        evidence["max_step_s"] = limit
        return Verdict("roll_back", "step_timeout"), evidence
    return None, evidence
