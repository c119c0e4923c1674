"""Off-policy estimators on cases small enough to compute by hand, plus a simulated check."""

from __future__ import annotations

import numpy as np
import pytest

from winnow.core.errors import DataError
from winnow.evaluation.ope import (
    LoggedSlates, cross_fit_rewards, direct_method, effective_sample_size, estimate,
)


def _by_name(results):
    return {r.estimator: r for r in results}


def test_bandit_hand_case():
    # w = target / pscore = [2, 0, 2, 2]
    log = LoggedSlates(unit=np.arange(4), position=np.zeros(4, int), reward=np.array([1.0, 1, 0, 1]),
                       pscore=np.array([0.5, 0.5, 0.25, 0.25]), target=np.array([1.0, 0, 0.5, 0.5]),
                       q_logged=np.full(4, 0.5), dm=np.full(4, 0.4))
    res = _by_name(estimate(log, ("ips", "snips", "dr", "dm"), n_bootstrap=200))
    assert res["ips"].value == pytest.approx(1.0)          # (2 + 0 + 0 + 2) / 4
    assert res["snips"].value == pytest.approx(4 / 6)      # 4 / (2 + 0 + 2 + 2)
    assert res["dm"].value == pytest.approx(0.4)
    assert res["dr"].value == pytest.approx(0.4 + (1 + 0 - 1 + 1) / 4)  # 0.65
    assert res["ips"].ess == pytest.approx(36 / 12)
    for r in res.values():
        assert r.ci_low <= r.value <= r.ci_high and r.n_units == 4


def test_slate_position_based_hand_case():
    # unit 0: pos0 w=2 r=1, pos1 w=1 r=0 ; unit 1: pos0 w=1 r=1, pos1 w=1 r=1
    log = LoggedSlates(unit=np.array([7, 7, 9, 9]), position=np.array([0, 1, 0, 1]),
                       reward=np.array([1.0, 0, 1, 1]), pscore=np.array([0.25, 0.5, 0.5, 0.5]),
                       target=np.array([0.5, 0.5, 0.5, 0.5]))
    res = _by_name(estimate(log, ("ips", "snips"), n_bootstrap=0))
    assert res["ips"].value == pytest.approx((2 + 0 + 1 + 1) / 2)
    assert res["snips"].value == pytest.approx(3 / 3 + 1 / 2)


def test_ess_and_validation():
    assert effective_sample_size(np.ones(10)) == pytest.approx(10)
    assert effective_sample_size(np.array([1.0, 0, 0, 0])) == pytest.approx(1)
    with pytest.raises(DataError, match="pscore"):
        LoggedSlates(np.arange(2), np.zeros(2), np.zeros(2), np.array([0.5, 0.0]), np.ones(2))
    with pytest.raises(DataError, match="target"):
        LoggedSlates(np.arange(2), np.zeros(2), np.zeros(2), np.ones(2), np.array([0.5, 1.5]))
    log = LoggedSlates(np.arange(2), np.zeros(2), np.zeros(2), np.ones(2), np.ones(2))
    with pytest.raises(DataError, match="reward model"):
        estimate(log, ("dr",))
    with pytest.raises(ValueError, match="unknown estimators"):
        estimate(log, ("magic",))


def test_estimators_recover_simulated_truth():
    """Uniform logging over 5 actions; target prefers action 4. True value is known exactly."""
    rng = np.random.default_rng(3)
    n, n_actions = 20000, 5
    ctx = rng.integers(0, 2, n)
    p_click = np.array([[0.1, 0.2, 0.3, 0.4, 0.5], [0.5, 0.4, 0.3, 0.2, 0.1]])
    target_dist = np.array([[0.0, 0.1, 0.1, 0.1, 0.7], [0.7, 0.1, 0.1, 0.1, 0.0]])
    truth = 0.5 * (target_dist[0] @ p_click[0] + target_dist[1] @ p_click[1])
    action = rng.integers(0, n_actions, n)
    reward = (rng.random(n) < p_click[ctx, action]).astype(float)
    # reward model features: one-hot of (context, action)
    def feats(c, a):
        x = np.zeros((len(c), 2 * n_actions))
        x[np.arange(len(c)), c * n_actions + a] = 1.0
        return x
    eval_units = np.repeat(np.arange(n), n_actions)
    eval_actions = np.tile(np.arange(n_actions), n)
    q_log, q_eval = cross_fit_rewards(feats(ctx, action), reward, units=np.arange(n),
                                      x_eval=feats(ctx[eval_units], eval_actions), eval_units=eval_units)
    assert np.corrcoef(q_log, p_click[ctx, action])[0, 1] > 0.95
    dm = direct_method(eval_units, target_dist[ctx[eval_units], eval_actions], q_eval, units=np.arange(n))
    log = LoggedSlates(np.arange(n), np.zeros(n, int), reward, np.full(n, 1 / n_actions),
                       target_dist[ctx, action], q_logged=q_log, dm=dm)
    for r in estimate(log, ("ips", "snips", "dr", "dm"), n_bootstrap=300):
        assert r.ci_low <= truth <= r.ci_high or abs(r.value - truth) < 0.01, r
        assert abs(r.value - truth) / truth < 0.08, r
    dr = _by_name(estimate(log, ("ips", "dr"), n_bootstrap=300))
    assert dr["dr"].ci_high - dr["dr"].ci_low < dr["ips"].ci_high - dr["ips"].ci_low  # DR: lower variance


def _write_logged_store(path, *, n_requests=3000, n_ranked=30, k=5, epsilon=0.3, seed=0):
    """Requests served by epsilon-greedy over rank scores; click prob depends on rank and position."""
    import json

    import pandas as pd

    from winnow.data.sqlite_store import SQLiteStore
    from winnow.pipeline.explore import EpsilonGreedyPolicy, rank_scores, request_seed

    rng = np.random.default_rng(seed)
    p_rank = 0.3 / (1 + np.arange(n_ranked)) ** 0.5
    examine = 1 / (1 + np.arange(k))
    pol = EpsilonGreedyPolicy(epsilon)
    imps, events = [], []
    for q in range(n_requests):
        rid = f"r{q}"
        sel = pol.select(rank_scores(n_ranked), k, seed=request_seed(rid))
        items = [{"item_id": f"i{q}-{r}", "position": j, "rank": int(r), "propensity": float(p)}
                 for j, (r, p) in enumerate(zip(sel.order, sel.propensity))]
        imps.append({"request_id": rid, "user_id": f"u{q % 500}", "timestamp": 1000 + q,
                     "context": {"n_ranked": n_ranked}, "items": items})
        for j, r in enumerate(sel.order):
            if rng.random() < p_rank[r] * examine[j]:
                events.append({"user_id": f"u{q % 500}", "item_id": f"i{q}-{r}", "event_type": "click",
                               "value": np.nan, "timestamp": 1001 + q, "event_id": None,
                               "context": json.dumps({"request_id": rid})})
    store = SQLiteStore(path)
    store.log_impressions(imps)
    store.append_events(pd.DataFrame(events))
    truth_greedy = float((p_rank[:k] * examine).sum())
    return store, truth_greedy


def test_store_impression_log_ope(tmp_path):
    from winnow.evaluation.ope import log_from_impressions

    store, truth = _write_logged_store(tmp_path / "s.db", n_requests=4000)
    try:
        log = log_from_impressions(store.impression_outcomes(), store.read_impressions(),
                                   {"kind": "deterministic"})
    finally:
        store.close()
    assert len(np.unique(log.unit)) == 4000 and len(log.reward) == 20000
    res = _by_name(estimate(log, ("ips", "snips", "dr"), n_bootstrap=300))
    for name in ("ips", "snips", "dr"):
        se = (res[name].ci_high - res[name].ci_low) / 3.92
        assert abs(res[name].value - truth) < 3 * se, (name, res[name], truth)  # within 3 standard errors
        assert abs(res[name].value - truth) / truth < 0.08
    # only the non-explored slots carry weight 1 / 0.7
    assert set(np.round(log.weights, 6)) <= {0.0, round(1 / 0.7, 6)}


def test_cli_ope_on_store(tmp_path):
    import json

    from typer.testing import CliRunner

    from winnow.cli import app

    home = tmp_path / "home"
    home.mkdir()
    store, truth = _write_logged_store(home / "winnow.db", n_requests=500)
    store.close()
    out = tmp_path / "ope.json"
    res = CliRunner().invoke(app, ["--home", str(home), "ope", "--policy", "greedy", "--bootstrap", "100",
                                   "--json", str(out)])
    assert res.exit_code == 0, res.output
    assert "snips" in res.output and "ESS" in res.output
    data = json.loads(out.read_text())
    assert {r["estimator"] for r in data["estimators"]} == {"ips", "snips", "dr"}
    assert all(r["n_units"] == 500 for r in data["estimators"])
