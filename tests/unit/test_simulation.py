"""Closed-loop simulator: a small configuration as a regression guard (the loop and the way out)."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from winnow.core.errors import ConfigError
from winnow.simulation.loop import policy_spec, simulate
from winnow.pipeline.explore import rank_marginals
from winnow.simulation.ope_check import ope_check
from winnow.simulation.report import gini, summarise, top_share, write_report
from winnow.simulation.users import SimulationConfig, UserWorld

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

SMALL = SimulationConfig(n_users=200, n_items=400, pool=40, fresh=20, rounds=10, k=5, topics=10,
                         release_rounds=8)


def test_gini_and_top_share_by_hand():
    assert gini(np.array([1, 1, 1, 1])) == pytest.approx(0.0)
    assert gini(np.array([0, 0, 0, 4])) == pytest.approx(0.75)  # (n - 1) / n
    assert gini(np.array([1, 3])) == pytest.approx(0.25)
    assert top_share(np.array([5, 1, 1, 1, 1, 1, 0, 0, 0, 0]), 0.1) == pytest.approx(0.5)


def test_world_position_bias_fatigue_and_release():
    w = UserWorld(SMALL)
    users = np.array([0, 0])
    slate = np.tile(np.arange(5), (2, 1))
    p = w.click_prob(users, slate)
    pe = w.click_prob(users, slate, examined=True)
    assert p[0] == pytest.approx(pe[0] / (1 + np.arange(5)))
    before = w.click_prob(np.array([0]), slate[:1], examined=True)
    w.respond(np.array([0]), slate[:1])
    assert (w.click_prob(np.array([0]), slate[:1], examined=True) < before).all()  # fatigue
    n0 = w.released().sum()
    assert n0 == 200
    for _ in range(SMALL.release_rounds):
        w.step()
    assert w.released().all()


def test_loop_narrows_coverage_and_exploration_breaks_it(tmp_path):
    greedy = simulate("greedy", SMALL)
    explore = simulate("epsilon", SMALL)
    g, e = summarise(greedy), summarise(explore)
    cov_g = [r["coverage"] for r in greedy["rounds"]]
    assert cov_g[-1] < cov_g[0]  # pure exploitation narrows round after round
    assert greedy["rounds"][-1]["never_shown"] > 0.9
    assert e["coverage_final"] >= 2 * g["coverage_final"]
    assert e["engagement_long_term"] >= g["engagement_long_term"]
    conc = [r["train_concentration"] for r in greedy["rounds"]]
    assert conc[-1] > conc[0]  # the training data concentrates on what was shown
    paths = write_report({"greedy": greedy, "epsilon": explore}, tmp_path)
    data = json.loads(paths["json"].read_text())
    assert set(data["summary"]) == {"greedy", "epsilon"}
    assert paths["coverage"].read_bytes()[:4] == b"\x89PNG"


def test_same_seed_same_run():
    cfg = SimulationConfig(n_users=50, n_items=100, pool=20, fresh=5, rounds=2, k=5, topics=5)
    a, b = simulate("epsilon", cfg), simulate("epsilon", cfg)
    assert a["rounds"] == b["rounds"]


def test_ope_against_simulated_truth():
    res = ope_check("epsilon", "greedy", SMALL, warmup=2, n_bootstrap=100)
    for name in ("snips", "dr"):
        assert res["estimators"][name]["relative_error"] < 0.15, res
    assert res["truth"] != pytest.approx(res["logging_value"], rel=0.01)  # a different policy


def test_marginal_matrix_rows_sum_to_one():
    for spec in ({"kind": "deterministic"}, {"kind": "epsilon_greedy", "epsilon": 0.3},
                 {"kind": "softmax", "temperature": 0.7}):
        m = rank_marginals(spec, 12, 4, n_mc=20000)
        assert m.sum(axis=1) == pytest.approx(np.ones(4), abs=1e-9)
        assert m.sum(axis=0).max() <= 1.0 + 1e-9
    eps = rank_marginals({"kind": "epsilon_greedy", "epsilon": 0.3}, 12, 4)
    assert eps[0, 0] == pytest.approx(0.7) and eps[0, 5] == pytest.approx(0.3 / 8)


def test_policy_spec_parsing():
    assert policy_spec("kind=epsilon_greedy,epsilon=0.1,pool=50") == {
        "kind": "epsilon_greedy", "epsilon": 0.1, "pool": 50}
    with pytest.raises(ConfigError, match="preset"):
        policy_spec("explore-lots")
    with pytest.raises(ConfigError, match="k=6 must be <= pool=5"):
        SimulationConfig(k=6, pool=5)


def test_cli_simulate(tmp_path):
    from typer.testing import CliRunner

    from winnow.cli import app

    res = CliRunner().invoke(app, ["--home", str(tmp_path / "h"), "simulate", "--rounds", "2", "--users", "40",
                                   "--items", "200", "--policy", "greedy", "--policy", "softmax", "--no-ope",
                                   "--out", str(tmp_path / "out")])
    assert res.exit_code == 0, res.output
    data = json.loads((tmp_path / "out" / "simulation.json").read_text())
    assert set(data["runs"]) == {"greedy", "softmax"} and len(data["runs"]["greedy"]["rounds"]) == 2
    assert (tmp_path / "out" / "simulation_engagement.png").exists()
