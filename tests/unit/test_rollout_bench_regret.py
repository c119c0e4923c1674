"""bench/rollout.py's regret and scrambled-catalog helpers: the regret of the arms served is
measured against always serving the better bundle, a 50/50 split loses half the gap in
expectation, and a scramble permutes exactly the requested share of the catalog."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

_BENCH = Path(__file__).resolve().parents[2] / "bench"
_spec = importlib.util.spec_from_file_location("rollout_bench", _BENCH / "rollout.py")
rollout_bench = importlib.util.module_from_spec(_spec)
sys.modules["rollout_bench"] = rollout_bench
_spec.loader.exec_module(rollout_bench)

E_CHAMP = np.array([0.5, 0.4, 0.6, 0.3])
E_CHALL = np.array([0.8, 0.2, 0.9, 0.7])  # better on average (0.65 vs 0.45), worse for user 1


@pytest.mark.parametrize("challenger_better", [True, False])
def test_serving_the_better_bundle_everywhere_loses_nothing(challenger_better: bool) -> None:
    arm = np.full(4, challenger_better)
    lost, _ = rollout_bench.tick_regret(E_CHAMP, E_CHALL, arm, challenger_better)
    assert lost == pytest.approx(0.0)


def test_regret_counts_only_the_users_served_the_worse_bundle_per_user() -> None:
    arm = np.array([True, True, False, False])  # users 2, 3 stay on the (worse) champion
    lost, _ = rollout_bench.tick_regret(E_CHAMP, E_CHALL, arm, True)
    assert lost == pytest.approx((0.9 - 0.6) + (0.7 - 0.3))
    # user 1 prefers the champion: giving it the challenger is no loss against "always the better bundle"
    lost, _ = rollout_bench.tick_regret(E_CHAMP, E_CHALL, np.array([False, True, True, True]), True)
    assert lost == pytest.approx(0.8 - 0.5)


@pytest.mark.parametrize("challenger_better", [True, False])
def test_a_5050_split_loses_half_of_serving_everyone_the_worse_bundle(challenger_better: bool) -> None:
    champ, chall = (E_CHAMP, E_CHALL) if challenger_better else (E_CHALL, E_CHAMP)  # the better one on average
    worse_everywhere = np.full(4, not challenger_better)
    all_worse, split = rollout_bench.tick_regret(champ, chall, worse_everywhere, challenger_better)
    assert split == pytest.approx(0.5 * all_worse)
    assert all_worse == pytest.approx(E_CHALL.sum() - E_CHAMP.sum())


@pytest.mark.parametrize("share", [0.0, 0.3, 1.0])
def test_scramble_permutes_the_requested_share_of_the_catalog(share: float) -> None:
    to = rollout_bench.scramble(1000, share, seed=3)
    assert sorted(to.tolist()) == list(range(1000))  # a permutation: no two items merged
    touched = int(round(share * 1000))
    assert (to != np.arange(1000)).sum() <= touched
    if share:
        assert (to != np.arange(1000)).sum() >= 0.9 * touched  # a random permutation fixes ~1 item
    assert np.array_equal(to, rollout_bench.scramble(1000, share, seed=3))
