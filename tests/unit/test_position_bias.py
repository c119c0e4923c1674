"""The position-bias estimator and correction (winnow.models.position_bias) against hand-computed
values and logs generated with a known examination curve."""

from __future__ import annotations

import json

import numpy as np
import pytest

from winnow.core.config import load_config
from winnow.core.errors import ConfigError
from winnow.features.spec import FeatureSpec
from winnow.models.position_bias import (
    ExaminationCurve,
    correction,
    estimate_examination,
    weighted_ndcg,
)
from winnow.models.ranker import LambdaRanker


def _log(ctr: list[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows with one constant feature: (shown, clicked) per position."""
    pos, lab = [], []
    for j, (n, c) in enumerate(ctr):
        pos += [j] * n
        lab += [1.0] * c + [0.0] * (n - c)
    return np.zeros((len(pos), 1)), np.asarray(lab), np.asarray(pos)


def test_constant_relevance_gives_the_ctr_ratios():
    # every row equally relevant: the PBM's maximum likelihood is theta_j * gamma = CTR_j, so the
    # relative curve is CTR_j / CTR_0 = 0.4, 0.2, 0.1 -> 1, 0.5, 0.25 (exactly, up to EM tolerance)
    x, y, pos = _log([(100, 40), (100, 20), (200, 20)])
    curve = estimate_examination(x, y, pos, tol=1e-7, iterations=200)
    np.testing.assert_allclose(curve.examination, [1.0, 0.5, 0.25], atol=2e-3)
    assert curve.shown == [100, 100, 200] and curve.clicks == [40, 20, 20]


def _synthetic(seed: int, *, sorted_by_relevance: bool, n_slates: int = 6000, k: int = 8):
    """Slates of k from a known PBM: examine(j) = 1 / (1 + j), relevance sigmoid(3 * x0 - 2).
    ``sorted_by_relevance``: the logging policy orders each slate by a noisy relevance score,
    so top positions hold more relevant items (what makes raw CTR ratios wrong)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n_slates, k, 2))
    rel = 1.0 / (1.0 + np.exp(-(3.0 * x[..., 0] - 2.0)))
    if sorted_by_relevance:
        order = np.argsort(-(x[..., 0] + rng.normal(scale=0.7, size=x[..., 0].shape)), axis=1)
        x = np.take_along_axis(x, order[..., None], axis=1)
        rel = np.take_along_axis(rel, order, axis=1)
    examine = 1.0 / (1.0 + np.arange(k))
    clicks = rng.random(rel.shape) < rel * examine[None, :]
    pos = np.tile(np.arange(k), (n_slates, 1))
    return x.reshape(-1, 2), clicks.ravel().astype(float), pos.ravel(), examine


@pytest.mark.parametrize("seed", [0, 1])
def test_recovers_a_known_curve_when_the_logging_policy_sorts_by_relevance(seed):
    x, y, pos, examine = _synthetic(seed, sorted_by_relevance=True)
    curve = estimate_examination(x, y, pos, seed=seed)
    np.testing.assert_allclose(curve.examination, examine, atol=0.06)
    # the naive estimate (CTR ratio) is far off here: relevant items sit on top
    ctr = np.bincount(pos, weights=y) / np.bincount(pos)
    assert np.max(np.abs(ctr / ctr[0] - examine)) > 0.15


def test_randomised_positions_recover_the_curve():
    x, y, pos, examine = _synthetic(5, sorted_by_relevance=False)
    curve = estimate_examination(x, y, pos)
    np.testing.assert_allclose(curve.examination, examine, atol=0.06)


def test_inverse_propensity_weights_by_hand():
    curve = ExaminationCurve(examination=[1.0, 0.5, 0.25], shown=[1, 1, 2], clicks=[1, 1, 1],
                             iterations=1, converged=True)
    w = curve.weights(np.array([0, 1, 2, 2, 7]), np.array([1.0, 2.0, 0.0, 1.0, 1.0]), max_weight=3.0)
    # clicked at 0 -> 1, purchased at 1 -> 2, unclicked -> 1, clicked at 2 -> 4 clipped to 3,
    # position 7 pools into the last position (2) -> 3
    np.testing.assert_allclose(w, [1.0, 2.0, 1.0, 3.0, 3.0])


def test_weighted_ndcg_by_hand():
    # one list of 3: labels 1, 0, 1 with weights 1, 1, 2 -> gains 1, 0, 2
    score = np.array([3.0, 2.0, 1.0])
    got = weighted_ndcg(score, np.array([1.0, 0.0, 1.0]), np.array([1.0, 1.0, 2.0]), np.array([3]), at=10)
    dcg = 1.0 + 2.0 / np.log2(4)
    ideal = 2.0 + 1.0 / np.log2(3)
    assert got == pytest.approx(dcg / ideal)
    # unit weights and a second list with no gain (counts 0): the mean halves
    two = weighted_ndcg(np.r_[score, 1.0, 2.0], np.r_[1.0, 0.0, 1.0, 0.0, 0.0], np.ones(5), np.array([3, 2]), at=10)
    assert two == pytest.approx((1.0 + 1.0 / np.log2(4)) / (1.0 + 1.0 / np.log2(3)) / 2)
    # at=1 looks at the top row only
    assert weighted_ndcg(score, np.array([0.0, 0.0, 1.0]), np.ones(3), np.array([3]), at=1) == 0.0


def test_correction_modes_and_reports():
    x, y, pos, _ = _synthetic(2, sorted_by_relevance=True, n_slates=2000)
    none = correction("none", x, y, pos)
    assert none.weight is None and none.position is None and none.report == {"mode": "none"}
    ips = correction("ips", x, y, pos, max_weight=5.0)
    assert ips.position is None and ips.weight is not None
    assert np.all(ips.weight[y == 0] == 1.0) and ips.weight.max() <= 5.0 and ips.weight[y > 0].min() >= 1.0
    assert ips.report["mode"] == "ips" and ips.report["applied"] and len(ips.report["examination"]) == 8
    lr = correction("lambdarank", x, y, pos)
    assert lr.weight is None and lr.position is not None and lr.position.dtype == np.int32
    hist = correction("ips", x, y, None)
    assert hist.report["applied"] is False and "history" in hist.report["why"]
    # no click on top: trained as logged, and the report says why
    y0 = np.where(pos == 0, 0.0, y)
    blind = correction("ips", x, y0, pos)
    assert blind.weight is None and blind.report["applied"] is False and "position 0" in blind.report["why"]
    with pytest.raises(ValueError, match="position_bias must be one of"):
        correction("dcm", x, y, pos)
    with pytest.raises(ValueError, match="non-negative"):
        estimate_examination(x, y, np.where(pos == 3, -1, pos))


def test_bad_config_names_the_key_and_the_choices(tmp_path):
    with pytest.raises(ConfigError) as err:
        load_config(tmp_path, environ={"WINNOW__RANKER__POSITION_BIAS": "clicks"})
    assert "position_bias" in str(err.value) and "ips" in str(err.value)
    with pytest.raises(ConfigError, match="position_bias_max_weight"):
        load_config(tmp_path, environ={"WINNOW__RANKER__POSITION_BIAS_MAX_WEIGHT": "0.5"})


def test_ranker_trains_with_each_mode_and_saves_the_curve(tmp_path):
    spec = FeatureSpec(sources=["als"])
    rng = np.random.default_rng(0)
    lists, k = 400, 8
    x = rng.normal(size=(lists * k, len(spec.names))).astype(np.float32)
    pos = np.tile(np.arange(k), lists)
    rel = 1.0 / (1.0 + np.exp(-(2.0 * x[:, 0] - 1.0)))
    y = (rng.random(len(x)) < rel / (1.0 + pos)).astype(np.float32)
    groups = np.full(lists, k)
    tr, va = slice(0, 300 * k), slice(300 * k, None)
    for mode in ("none", "ips", "lambdarank"):
        bias = correction(mode, x[tr], y[tr], pos[tr])
        r = LambdaRanker(spec, num_boost_round=30, early_stopping_rounds=10, num_threads=1).fit(
            x[tr], y[tr], groups[:300], valid=(x[va], y[va], groups[300:]), bias=bias,
            valid_position=pos[va])
        assert r.position_bias_["mode"] == mode
        assert r.position_bias_["valid_metric"] == ("ndcg@10" if mode == "none" else "ips_ndcg@10")
        r.save(tmp_path / mode)
        back = LambdaRanker.load(tmp_path / mode)
        assert back.position_bias_ == r.position_bias_
        meta = json.loads((tmp_path / mode / "ranker.json").read_text())
        assert meta["position_bias"]["mode"] == mode
        np.testing.assert_allclose(back.predict(x[va]), r.predict(x[va]))
    assert len(back.position_bias_["examination"]) == k
