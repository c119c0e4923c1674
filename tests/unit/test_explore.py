"""Exploration policies: propensities against hand-computed and brute-force values."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from winnow.core.errors import ConfigError
from winnow.pipeline.explore import (
    DeterministicPolicy, EpsilonGreedyPolicy, SoftmaxPolicy, ThompsonPolicy, build_policy, request_seed,
)


def _empirical(policy, scores, k, n=20000, **kw):
    """Frequency of each (position, entry) over n seeds: array [k, len(scores)]."""
    freq = np.zeros((k, len(scores)))
    for seed in range(n):
        sel = policy.select(scores, k, seed=seed, **kw)
        freq[np.arange(len(sel.order)), sel.order] += 1
    return freq / n


def test_request_seed_is_stable_and_distinct():
    assert request_seed("r1") == request_seed("r1")
    assert request_seed("r1") != request_seed("r2")
    assert request_seed("r1", salt="a") != request_seed("r1", salt="b")


def test_deterministic_logs_one():
    sel = DeterministicPolicy().select(np.array([3.0, 2.0, 1.0]), 2, seed=0)
    assert sel.order.tolist() == [0, 1]
    assert sel.propensity.tolist() == [1.0, 1.0]


def test_epsilon_greedy_three_items_exact():
    # k=1, epsilon=0.3, pool of 3: top item 0.7; items 2 and 3 each 0.3/2 = 0.15
    pol = EpsilonGreedyPolicy(0.3, pool=3)
    scores = np.array([0.9, 0.5, 0.1])
    seen = {}
    for seed in range(200):
        sel = pol.select(scores, 1, seed=seed)
        seen[int(sel.order[0])] = float(sel.propensity[0])
    assert seen == pytest.approx({0: 0.7, 1: 0.15, 2: 0.15})
    freq = _empirical(pol, scores, 1, n=20000)[0]
    assert freq == pytest.approx([0.7, 0.15, 0.15], abs=0.01)


def test_epsilon_greedy_marginals_match_frequencies_with_slots():
    pol = EpsilonGreedyPolicy(0.4, pool=6, slots=[1, 2])
    scores = np.linspace(1, 0, 8)
    freq = _empirical(pol, scores, 3, n=20000)
    for seed in range(50):
        sel = pol.select(scores, 3, seed=seed)
        for j, (idx, p) in enumerate(zip(sel.order, sel.propensity)):
            assert freq[j, idx] == pytest.approx(p, abs=0.012)
    assert freq[0, 0] == 1.0  # slot 0 never explores
    assert freq[1, 1] == pytest.approx(0.6, abs=0.012)
    assert freq[1, 4] == pytest.approx(0.4 / 3, abs=0.012)  # pool beyond top-3: entries 3, 4, 5


def test_same_seed_replays_same_slate():
    pol = SoftmaxPolicy(0.5, n_mc=200)
    scores = np.random.default_rng(0).normal(size=20)
    a = pol.select(scores, 5, seed=request_seed("req-42"))
    b = pol.select(scores, 5, seed=request_seed("req-42"))
    assert a.order.tolist() == b.order.tolist()
    assert np.array_equal(a.propensity, b.propensity)


def _pl_exact_marginals(w: np.ndarray, k: int) -> np.ndarray:
    """Brute force over all ordered prefixes: [k, n] marginal probabilities."""
    n = len(w)
    out = np.zeros((k, n))
    for perm in itertools.permutations(range(n), k):
        p, rem = 1.0, w.sum()
        for i in perm:
            p *= w[i] / rem
            rem -= w[i]
        for j, i in enumerate(perm):
            out[j, i] += p
    return out


def test_softmax_prefix_product_and_marginals():
    scores = np.array([2.0, 1.0, 0.0])
    pol = SoftmaxPolicy(1.0, n_mc=20000)
    w = np.exp(scores)
    exact = _pl_exact_marginals(w, 2)
    for seed in range(10):
        sel = pol.select(scores, 2, seed=seed)
        a, b = sel.order
        # hand form: P(a first) * P(b second | a first)
        assert sel.prefix_propensity[0] == pytest.approx(w[a] / w.sum())
        assert sel.prefix_propensity[1] == pytest.approx(w[a] / w.sum() * w[b] / (w.sum() - w[a]))
        assert sel.propensity[0] == pytest.approx(exact[0, a])  # exact at position 0
        assert sel.propensity[1] == pytest.approx(exact[1, b], abs=0.015)  # Monte Carlo
    assert sel.method == "mc"
    freq = _empirical(SoftmaxPolicy(1.0, n_mc=1), scores, 2, n=20000)
    assert freq == pytest.approx(exact, abs=0.012)


def test_softmax_temperature_limits():
    scores = np.array([1.0, 0.0, -1.0])
    cold = SoftmaxPolicy(0.01, n_mc=10).select(scores, 1, seed=1)
    assert cold.order[0] == 0 and cold.propensity[0] == pytest.approx(1.0)
    hot = SoftmaxPolicy(1e6).exact_first_position(scores)
    assert hot == pytest.approx([1 / 3] * 3, rel=1e-4)


def test_thompson_favours_low_data_item_and_mc_matches_frequency():
    clicks = np.array([50.0, 0.0, 10.0])
    shown = np.array([1000.0, 0.0, 1000.0])  # item 1 is new: Beta(1, 20), mean ~0.048 ~ item 0
    pol = ThompsonPolicy(clicks, shown, prior=(1.0, 20.0), n_mc=4000)
    items = np.array([0, 1, 2])
    scores = np.zeros(3)
    freq = _empirical(pol, scores, 1, n=3000, items=items)[0]
    assert freq[1] > 0.25  # the new item is explored
    assert freq[2] < 0.01  # the well-measured poor item almost never
    for seed in range(5):
        sel = pol.select(scores, 1, seed=seed, items=items)
        assert sel.propensity[0] == pytest.approx(freq[sel.order[0]], abs=0.03)
    pol.update(np.array([1, 1]), np.array([True, False]))
    assert pol.shown[1] == 2 and pol.clicks[1] == 1


def test_build_policy_validates():
    assert isinstance(build_policy({"kind": "epsilon_greedy", "epsilon": 0.2}), EpsilonGreedyPolicy)
    with pytest.raises(ConfigError, match="unknown policy 'greedy'"):
        build_policy({"kind": "greedy"})
    with pytest.raises(ConfigError, match="unknown keys \\['temp'\\]"):
        build_policy({"kind": "softmax", "temp": 1})
    with pytest.raises(ConfigError, match="epsilon must be in"):
        build_policy({"kind": "epsilon_greedy", "epsilon": 1.5})
    with pytest.raises(ConfigError, match="thompson"):
        build_policy({"kind": "thompson"})


def test_surface_policies():
    from winnow.pipeline.explore import SurfacePolicies

    sp = SurfacePolicies({"home": {"kind": "epsilon_greedy", "epsilon": 0.5}, "default": {"kind": "softmax",
                                                                                         "temperature": 0.3}})
    assert sp.for_surface("home").name == "epsilon_greedy"
    assert sp.for_surface("search").name == "softmax"
    assert SurfacePolicies().for_surface("x").name == "deterministic"
    a, name = sp.select("home", 50, 10, request_id="r1")
    b, _ = sp.select("home", 50, 10, request_id="r1")
    assert name == "epsilon_greedy" and a.order.tolist() == b.order.tolist()
    assert len(set(a.order.tolist())) == 10 and a.order.max() < 50
    empty, _ = sp.select("home", 0, 10, request_id="r2")
    assert len(empty.order) == 0
    with pytest.raises(ConfigError, match="pipeline.explore.home"):
        SurfacePolicies({"home": {"kind": "thompson"}})
