"""Typed configuration of ``[rollout]``: how a challenger bundle is launched (winnow.rollout).

Part of winnow.core.config (which re-exports it). ``winnow rollout canary/shadow`` and the admin
API take the plan, step duration, minimum exposure and shadow sample from here unless given;
the thresholds below are fixed for a rollout when it starts (stored in its record), so every
worker and replica judges it by the same rules. docs/ROLLOUT.md.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from winnow.core.config_models import _Section


class GuardrailConfig(_Section):
    """Challenger-vs-champion limits checked continuously; a breach rolls back at once.
    Rates are per request of each arm since the rollout started; a limit applies once the
    challenger has served ``min_requests``. A rate breaches when the always-valid interval
    (level 1 - ``alpha``, mixture scale ``tau``) of its increase lies above the allowed
    increase: sampling noise alone breaches with probability <= ``alpha`` per rate however
    often it is checked."""

    min_requests: int = Field(50, ge=1)
    max_error_rate_increase: float = Field(0.01, ge=0, le=1)    # challenger errors (champion served instead)
    max_empty_rate_increase: float = Field(0.05, ge=0, le=1)    # empty slates
    max_fallback_rate_increase: float = Field(0.10, ge=0, le=1)  # requests with a fallback (cold_start aside)
    p99_ratio: float = Field(2.0, ge=1)      # challenger p99 may reach this x the champion's ...
    p99_floor_ms: float = Field(50.0, ge=0)  # ... or this, whichever is larger
    min_coverage_ratio: float = Field(0.5, ge=0, le=1)  # challenger's distinct items served / champion's (0: off)
    alpha: float = Field(0.01, gt=0, lt=1)  # rate guardrails: false breach probability per rate
    tau: float = Field(0.1, gt=0, le=1)     # rate guardrails: mixture scale of the increase (sequential.py)


class RolloutConfig(_Section):
    """Defaults of a rollout and the rules its decisions follow."""

    poll_s: float = Field(1.0, gt=0)    # every server re-reads the rollout state this often
    check_s: float = Field(10.0, gt=0)  # guardrails / sequential test / step ends evaluated this often
    sample: float = Field(0.2, gt=0, le=1)  # shadow: share of requests the challenger also answers
    plan: list[int] = Field(default_factory=lambda: [1, 5, 25, 50, 100])  # canary: challenger % per step
    step_s: float = Field(1800.0, gt=0)  # a step lasts at least this long
    max_step_s: float = Field(0.0, ge=0)  # a step still inconclusive this long after it began rolls back (0: no limit)
    min_exposed: int = Field(2000, ge=1)  # challenger users exposed before a step may end
    metric: Literal["ctr", "conversion_rate"] = "ctr"  # primary metric, per exposed user
    margin: float = Field(0.05, ge=0, lt=1)  # non-inferior: lower bound > -margin x champion mean
    alpha: float = Field(0.05, gt=0, lt=0.5)  # always-valid error rate of the sequential test
    tau: float = Field(0.05, gt=0)  # mSPRT mixing scale (metric units: the effect sizes expected)
    srm_p: float = Field(0.001, gt=0, lt=1)  # assignment chi-square p below this halts the rollout
    srm_min_users: int = Field(100, ge=10)   # newly assigned users of a step before SRM is judged
    shadow_queue: int = Field(256, ge=1)  # shadow requests waiting; a full queue drops (counted)
    shadow_batch: int = Field(64, ge=1)   # shadow records written per store transaction
    # shadow work per worker process: at most this share of one core (token bucket on the shadow
    # thread's CPU seconds); jobs also wait for the worker to be idle (serving/shadow.py)
    shadow_max_cpu_share: float = Field(0.1, gt=0, le=1)
    # under `winnow serve`'s dispatcher: a shadow's challenger lives in one shadow process of the
    # server (SCHED_IDLE jobs; serving/shadow_proc.py) instead of in every worker; false: in the workers
    shadow_process: bool = True
    max_build_failures: int = Field(3, ge=1)  # a challenger that fails to build this often is rolled back
    guardrails: GuardrailConfig = GuardrailConfig()

    @field_validator("plan")
    @classmethod
    def _plan(cls, v: list[int]) -> list[int]:
        from winnow.core.errors import RolloutError

        try:
            check_plan(v)
        except RolloutError as exc:
            raise ValueError(str(exc)) from None
        return v


def check_plan(plan: list[int] | tuple[int, ...]) -> tuple[int, ...]:
    """The plan as a tuple if every share is an integer percent in 1..100, strictly increasing,
    ending at 100; RolloutError (422) naming the problem otherwise."""
    from winnow.core.errors import RolloutError

    steps = tuple(plan)
    if not steps:
        raise RolloutError("plan is empty: give the challenger's percent per step, e.g. 1,5,25,50,100", status=422)
    bad = [p for p in steps if isinstance(p, bool) or not isinstance(p, int) or not 1 <= p <= 100]
    if bad:
        raise RolloutError(f"plan {list(steps)}: shares must be whole percents in 1..100, got {bad}", status=422)
    if any(b <= a for a, b in zip(steps, steps[1:])):
        raise RolloutError(f"plan {list(steps)} is not strictly increasing", status=422)
    if steps[-1] != 100:
        raise RolloutError(f"plan {list(steps)} does not end at 100 (the last step promotes the challenger)",
                           status=422)
    return steps
