"""The canary's guardrail and sample-ratio rules on hand-built arm totals (the serving tests
switch them off so a loaded machine's latency cannot decide those rollouts)."""

from __future__ import annotations

import numpy as np

from winnow.data.rollouts import Rollout
from winnow.rollout.arms import RATE_COLUMNS, Arm
from winnow.rollout.assign import CHALLENGER, CHAMPION
from winnow.rollout.decide import evaluate

PARAMS = {"guardrails": {"min_requests": 50, "p99_ratio": 2.0, "p99_floor_ms": 50.0,
                         "max_error_rate_increase": 0.01, "max_empty_rate_increase": 0.01,
                         "max_fallback_rate_increase": 0.05},
          "srm_p": 0.001, "srm_min_users": 100, "step_s": 3600, "min_exposed": 10}


def _rollout() -> Rollout:
    return Rollout(id=1, state="canary", revision=1, started=0, challenger="c", champion="a",
                   mode="canary", plan=(50, 100), step=0, step_started=0, params=PARAMS)


def _arm(requests: int, *, latency: float = 5.0, errors: int = 0, new: int = 0) -> Arm:
    """``requests`` spread round-robin over (up to) 30 users; the errors on the first requests."""
    users = min(requests, 30)
    per_user = np.zeros((users, len(RATE_COLUMNS)), np.int64)
    for k in range(requests):
        per_user[k % users, 0] += 1
        per_user[k % users, 1] += k < errors
    return Arm(latency_ms=[latency] * requests, users={f"u{i}" for i in range(users)}, new_in_step=new,
               values=np.zeros(users), per_user=per_user)


def test_slow_challenger_rolls_back_at_once_and_a_fast_one_does_not() -> None:
    r = _rollout()
    slow = {CHAMPION: _arm(100, latency=10.0), CHALLENGER: _arm(100, latency=60.0)}  # > max(20, 50)
    verdict, evidence = evaluate(r, slow, 0, now=1.0)
    assert verdict is not None and (verdict.action, verdict.rule) == ("roll_back", "guardrail:p99_ms")
    assert evidence["breaches"] == ["p99_ms"]
    ok = {CHAMPION: _arm(100, latency=10.0), CHALLENGER: _arm(100, latency=45.0)}  # under the 50 ms floor
    assert evaluate(r, ok, 0, now=1.0)[0] is None
    few = {CHAMPION: _arm(100, latency=10.0), CHALLENGER: _arm(49, latency=999.0)}  # below min_requests
    assert evaluate(r, few, 0, now=1.0)[0] is None


def test_error_rate_breach_names_the_rate() -> None:
    # every challenger request errors: far above 0% + 1% at alpha 0.01 after 100 requests
    arms = {CHAMPION: _arm(100), CHALLENGER: _arm(100, errors=100)}
    verdict, evidence = evaluate(_rollout(), arms, 0, now=1.0)
    assert verdict is not None and verdict.rule == "guardrail:error_rate"
    assert evidence["rate_tests"]["error_rate"]["breach"]
    # 5 errors in 100 requests of 30 users: above 1% as a raw rate, not shown to be by 100 requests
    noisy = {CHAMPION: _arm(100), CHALLENGER: _arm(100, errors=5)}
    verdict, evidence = evaluate(_rollout(), noisy, 0, now=1.0)
    assert verdict is None and not evidence["rate_tests"]["error_rate"]["breach"]


def test_sample_ratio_mismatch_halts_and_a_fair_split_does_not() -> None:
    r = _rollout()  # 50% share: 300 vs 100 newly assigned users is p ~ 1e-23
    skewed = {CHAMPION: _arm(100, new=300), CHALLENGER: _arm(100, new=100)}
    verdict, evidence = evaluate(r, skewed, 0, now=1.0)
    assert verdict is not None and (verdict.action, verdict.rule) == ("halt", "srm")
    assert evidence["srm"]["observed"] == [300, 100] and evidence["srm"]["p_value"] < 1e-10
    fair = {CHAMPION: _arm(100, new=205), CHALLENGER: _arm(100, new=195)}
    verdict, evidence = evaluate(r, fair, 0, now=1.0)
    assert verdict is None and evidence["srm"]["p_value"] > 0.5


def _served(requests: int, catalog: int, *, k: int = 5, start: int = 0) -> Arm:
    """An arm that served ``requests`` slates of k items cycling through ``catalog`` items."""
    slates = [tuple(f"i{(start + r * k + j) % catalog}" for j in range(k)) for r in range(requests)]
    per_user = np.zeros((30, len(RATE_COLUMNS)), np.int64)
    per_user[:, 0] = [len(range(u, requests, 30)) for u in range(30)]  # round-robin over 30 users
    return Arm(latency_ms=[5.0] * requests, users={f"u{i}" for i in range(30)},
               values=np.zeros(30), slates=slates, per_user=per_user)


def test_coverage_guardrail_compares_distinct_items_at_equal_requests() -> None:
    r = _rollout()
    params = {**PARAMS, "guardrails": {**PARAMS["guardrails"], "min_coverage_ratio": 0.5}}
    r = Rollout(**{**r.__dict__, "params": params})
    # champion: 1000 requests over 200 items; challenger: 100 requests over 40 items. At equal
    # requests (100 of the champion's, spread over its window) the champion shows 200 distinct
    # items against the challenger's 40: ratio 0.2 < 0.5
    narrow = {CHAMPION: _served(1000, 200), CHALLENGER: _served(100, 40)}
    verdict, evidence = evaluate(r, narrow, 0, now=1.0)
    assert verdict is not None and (verdict.action, verdict.rule) == ("roll_back", "guardrail:coverage")
    assert evidence["coverage"] == {"requests": 100, "champion_items": 200, "challenger_items": 40, "ratio": 0.2}
    assert evidence["arms"][CHALLENGER]["distinct_items"] == 40
    # the same challenger share but a catalog as wide: no breach, although the champion's 1000
    # requests showed 5x more items in total than anything 100 requests can
    wide = {CHAMPION: _served(1000, 200), CHALLENGER: _served(100, 200, start=3)}
    verdict, evidence = evaluate(r, wide, 0, now=1.0)
    assert verdict is None and evidence["coverage"]["ratio"] >= 0.5
    # switched off with ratio 0; below min_requests not judged
    off = Rollout(**{**r.__dict__, "params": {**params, "guardrails": {**params["guardrails"],
                                                                        "min_coverage_ratio": 0.0}}})
    assert evaluate(off, narrow, 0, now=1.0)[0] is None
    few = {CHAMPION: _served(1000, 200), CHALLENGER: _served(49, 10)}
    assert evaluate(r, few, 0, now=1.0)[0] is None


def test_a_step_waiting_past_max_step_s_rolls_back() -> None:
    # exposure reached, step duration passed, but the arms' metric leaves the interval wide:
    # inconclusive -> waits; past max_step_s -> rolled back with the reason it was waiting for
    rng = np.random.default_rng(1)
    params = {**PARAMS, "step_s": 100, "max_step_s": 1000, "margin": 0.01}
    r = Rollout(**{**_rollout().__dict__, "params": params})
    arms = {CHAMPION: _arm(100), CHALLENGER: _arm(100)}
    for a in arms.values():
        a.values = rng.binomial(1, 0.1, 30).astype(float)
    verdict, evidence = evaluate(r, arms, 0, now=500.0)
    assert verdict is None and evidence["waiting"].startswith("inconclusive")
    verdict, evidence = evaluate(r, arms, 0, now=1000.0)
    assert verdict is not None and (verdict.action, verdict.rule) == ("roll_back", "step_timeout")
    assert evidence["waiting"].startswith("inconclusive") and evidence["max_step_s"] == 1000
    # no limit (0, and records from before the setting): it keeps waiting
    r0 = Rollout(**{**r.__dict__, "params": {**params, "max_step_s": 0}})
    assert evaluate(r0, arms, 0, now=10**9)[0] is None
    few = {CHAMPION: _arm(100), CHALLENGER: _arm(5)}  # exposure never reached: also times out
    verdict, evidence = evaluate(r, few, 0, now=2000.0)
    assert verdict is not None and verdict.rule == "step_timeout" and evidence["waiting"] == "exposed users"


def test_a_max_step_shorter_than_the_step_is_refused_before_anything_is_read(tmp_path) -> None:
    import pytest

    from winnow.core.config import WinnowConfig
    from winnow.core.errors import RolloutError
    from winnow.rollout import control

    cfg = WinnowConfig.model_validate({"home": str(tmp_path), "rollout": {"max_step_s": 60}})
    with pytest.raises(RolloutError, match="max_step_s 60.0 s is shorter than the step duration 1800.0 s") as err:
        control.start(None, cfg, challenger="20260101T000000Z-aaaaaa", mode="canary")  # type: ignore[arg-type]
    assert err.value.status == 422
