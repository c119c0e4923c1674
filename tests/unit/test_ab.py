"""A/B statistics with planted effects, SRM, CUPED, assignment and the store path."""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import pandas as pd
import pytest

from winnow.core.config import ExperimentConfig, load_config
from winnow.core.errors import ConfigError
from winnow.data.sqlite_store import SQLiteStore
from winnow.evaluation.ab import (
    assign, bucket, compare, cuped, experiment_frame, format_report, is_active, plot_report, report,
    sample_ratio_mismatch, user_metrics, welch,
)


def _exp(**kw) -> ExperimentConfig:
    base = {"name": "e1", "salt": "s", "variants": [{"name": "control", "traffic": 0.5},
                                                     {"name": "treat", "traffic": 0.5}]}
    return ExperimentConfig.model_validate({**base, **kw})


def test_assignment_sticky_salted_and_balanced():
    exp = _exp(variants=[{"name": "a", "traffic": 0.2}, {"name": "b", "traffic": 0.8}])
    users = [f"u{i}" for i in range(20000)]
    got = [assign(u, exp) for u in users]
    assert got == [assign(u, exp) for u in users]  # sticky
    share_a = got.count("a") / len(got)
    assert share_a == pytest.approx(0.2, abs=0.01)
    resalted = _exp(salt="other", variants=[{"name": "a", "traffic": 0.2}, {"name": "b", "traffic": 0.8}])
    moved = sum(a != assign(u, resalted) for u, a in zip(users, got))
    assert moved > 0.2 * len(users)  # new salt re-randomises
    assert 0.0 <= bucket("x", experiment="e") < 1.0


def test_config_validation():
    with pytest.raises(ConfigError, match="sum to 0.9"):
        load_config("/tmp/winnow-ab-test", environ={}, overrides={"experiments": [
            {"name": "x", "variants": [{"name": "a", "traffic": 0.5}, {"name": "b", "traffic": 0.4}]}]})
    with pytest.raises(ConfigError, match="duplicate variant names \\['a'\\]"):
        _ = load_config("/tmp/winnow-ab-test", environ={}, overrides={"experiments": [
            {"name": "x", "variants": [{"name": "a", "traffic": 0.5}, {"name": "a", "traffic": 0.5}]}]})
    two = {"name": "x", "variants": [{"name": "a", "traffic": 0.5}, {"name": "b", "traffic": 0.5}]}
    with pytest.raises(ConfigError, match="duplicate experiment names"):
        load_config("/tmp/winnow-ab-test", environ={}, overrides={"experiments": [two, two]})
    with pytest.raises(ConfigError, match="mmr_lambdaa"):
        load_config("/tmp/winnow-ab-test", environ={}, overrides={"experiments": [
            {"name": "x", "variants": [{"name": "a", "traffic": 0.5},
                                       {"name": "b", "traffic": 0.5, "overrides": {"mmr_lambdaa": 1}}]}]})
    cfg = load_config("/tmp/winnow-ab-test", environ={}, overrides={"experiments": [
        {**two, "start": "2026-01-01T00:00:00Z", "end": "2026-02-01T00:00:00Z"}]})
    exp = cfg.experiment("x")
    assert is_active(exp, datetime(2026, 1, 5, tzinfo=timezone.utc))
    assert not is_active(exp, datetime(2026, 2, 1, tzinfo=timezone.utc))
    with pytest.raises(ConfigError, match="unknown experiment 'y'"):
        cfg.experiment("y")


def test_welch_ci_covers_planted_effect():
    rng = np.random.default_rng(0)
    covered = 0
    for rep in range(40):
        c = rng.exponential(2.0, 4000)
        t = rng.exponential(2.0, 4000) + 0.15
        diff, lo, hi, p = welch(c, t)
        covered += lo <= 0.15 <= hi
    assert covered >= 34  # 95% nominal coverage, 40 replications
    diff, lo, hi, p = welch(rng.normal(0, 1, 20000), rng.normal(0.1, 1, 20000))
    assert p < 1e-6 and lo > 0
    _, _, _, p_null = welch(rng.normal(0, 1, 5000), rng.normal(0, 1, 5000))
    assert p_null > 0.001


def test_srm_detects_52_48_on_100k_users():
    chi2, p = sample_ratio_mismatch({"a": 52000, "b": 48000}, {"a": 0.5, "b": 0.5})
    assert chi2 == pytest.approx(160.0)  # (2000^2 / 50000) * 2
    assert p < 1e-30
    _, p_ok = sample_ratio_mismatch({"a": 50100, "b": 49900}, {"a": 0.5, "b": 0.5})
    assert p_ok > 0.05


def test_cuped_reduces_variance_and_keeps_effect():
    rng = np.random.default_rng(1)
    n = 5000
    x = rng.gamma(2.0, 2.0, 2 * n)  # pre-period engagement
    variant = np.array(["control"] * n + ["treat"] * n)
    y = 0.8 * x + rng.normal(0, 1.0, 2 * n) + np.where(variant == "treat", 0.2, 0.0)
    frame = pd.DataFrame({"variant": variant, "engagement": y, "pre_engagement": x})
    raw = compare(frame, "engagement", control="control", treatment="treat")
    adj = compare(frame, "engagement", control="control", treatment="treat", covariate="pre_engagement")
    assert adj.ci_high - adj.ci_low < 0.5 * (raw.ci_high - raw.ci_low)
    assert adj.variance_reduction > 0.7
    assert adj.ci_low <= 0.2 <= adj.ci_high
    y2, theta = cuped(y, x)
    assert theta == pytest.approx(0.8, abs=0.05)
    assert y2.mean() == pytest.approx(y.mean())


def test_user_metrics_and_report_from_store(tmp_path):
    exp = _exp(start="2026-01-10T00:00:00Z", end="2026-01-20T00:00:00Z")
    t0 = int(exp.start.timestamp())
    store = SQLiteStore(tmp_path / "s.db")
    rng = np.random.default_rng(2)
    users = [f"u{i}" for i in range(400)]
    rows, imps = [], []
    for i, u in enumerate(users):
        var = assign(u, exp)
        p = 0.3 if var == "treat" else 0.15
        imps.append({"request_id": f"r{i}", "user_id": u, "timestamp": t0 + 100,
                     "context": {"experiments": {"e1": var}},
                     "items": [{"item_id": f"i{j}", "position": j, "propensity": 1.0} for j in range(10)]})
        for j in range(10):
            if rng.random() < p:
                rows.append((u, f"i{j}", "click", np.nan, t0 + 200 + j))
        if rng.random() < 0.2:
            rows.append((u, "i0", "purchase", 25.0, t0 + 500))
        rows.append((u, "i1", "click", np.nan, t0 - 86400))  # pre-period
    store.log_impressions(imps)
    ev = pd.DataFrame(rows, columns=["user_id", "item_id", "event_type", "value", "timestamp"])
    ev["event_id"] = None
    ev["context"] = None
    store.append_events(ev)
    frame = experiment_frame(store, exp)
    store.close()
    assert len(frame) == 400 and set(frame["variant"]) == {"control", "treat"}
    assert (frame["shown"] == 10).all()
    assert frame["pre_clicks"].sum() == 400
    rep = report(frame, exp)
    ctr = next(r for r in rep["comparisons"] if r["metric"] == "ctr")
    assert ctr["ci_low"] <= 0.15 <= ctr["ci_high"] and ctr["p_value"] < 0.001
    rev = next(r for r in rep["comparisons"] if r["metric"] == "revenue")
    assert rev["mean_control"] == pytest.approx(
        frame.loc[frame.variant == "control", "revenue"].mean())
    assert "ctr" in format_report(rep)
    png = plot_report(rep, tmp_path / "e1.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_user_metrics_counts():
    exposures = pd.DataFrame({"user_id": ["a", "b"], "variant": ["x", "y"], "shown": [4.0, 0.0]})
    events = pd.DataFrame({"user_id": ["a", "a", "a", "b", "c"],
                           "event_type": ["click", "view", "purchase", "click", "click"],
                           "value": [np.nan, np.nan, 10.0, np.nan, np.nan]})
    m = user_metrics(exposures, events).set_index("user_id")
    assert m.loc["a", "clicks"] == 1 and m.loc["a", "conversions"] == 1 and m.loc["a", "revenue"] == 10
    assert m.loc["a", "engagement"] == 2 and m.loc["a", "ctr"] == 0.25
    assert np.isnan(m.loc["b", "ctr"]) and "c" not in m.index


def test_cli_ab_report(tmp_path):
    from typer.testing import CliRunner

    from winnow.cli import app

    home = tmp_path / "home"
    home.mkdir()
    (home / "winnow.toml").write_text(
        '[[experiments]]\nname = "e1"\nsalt = "s"\nstart = 2026-01-10T00:00:00Z\n'
        '[[experiments.variants]]\nname = "control"\ntraffic = 0.5\n'
        '[[experiments.variants]]\nname = "treat"\ntraffic = 0.5\n'
        'overrides = { max_consecutive_per_category = 1 }\n')
    exp = load_config(home, environ={}).experiment("e1")
    t0 = int(exp.start.timestamp())
    store = SQLiteStore(home / "winnow.db")
    rows = []
    for i in range(300):
        u = f"u{i}"
        rows.append((u, "i1", "click", np.nan, t0 + 10))
        if (assign(u, exp) == "treat" and i % 4 != 0) or i % 3 == 0:
            rows.append((u, "i2", "click", np.nan, t0 + 20))
    ev = pd.DataFrame(rows, columns=["user_id", "item_id", "event_type", "value", "timestamp"])
    store.append_events(ev.assign(event_id=None, context=None))
    store.close()
    png = tmp_path / "ab.png"
    res = CliRunner().invoke(app, ["--home", str(home), "ab", "report", "e1", "--out", str(png)])
    assert res.exit_code == 0, res.output
    assert "engagement" in res.output and "SRM" in res.output
    assert png.exists() and png.with_suffix(".json").exists()
    res = CliRunner().invoke(app, ["--home", str(home), "ab", "report", "nope"])
    assert res.exit_code != 0


def test_bucket_matches_config_method():
    exp = _exp()
    assert exp.bucket("u1") == bucket("u1", experiment="e1", salt="s")
