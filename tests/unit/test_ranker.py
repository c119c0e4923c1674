"""LambdaRanker: learns from lists, early-stops, explains, and round-trips as text + JSON."""

from __future__ import annotations

import json

import numpy as np
import pytest

from winnow.core.errors import BundleError, NotFittedError
from winnow.features.spec import FeatureSpec
from winnow.models.ranker import LambdaRanker


def _lists(spec: FeatureSpec, n_lists: int, size: int, seed: int):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n_lists * size, len(spec.names))).astype(np.float32)
    j = spec.names.index("cat_rate_max")
    x[:, spec.names.index("user_gender")] = rng.integers(0, 2, len(x))
    logit = 2.0 * x[:, j] + rng.normal(scale=0.5, size=len(x))
    y = (logit > np.quantile(logit, 0.9)).astype(np.float32)
    return x, y, np.full(n_lists, size)


def _ndcg10(scores: np.ndarray, y: np.ndarray, size: int) -> float:
    out = []
    for s, t in zip(scores.reshape(-1, size), y.reshape(-1, size), strict=True):
        if t.sum() == 0:
            continue
        top = t[np.argsort(-s)[:10]]
        ideal = np.sort(t)[::-1][:10]
        disc = 1 / np.log2(np.arange(2, 12))
        out.append((top * disc).sum() / (ideal * disc).sum())
    return float(np.mean(out))


@pytest.fixture(scope="module")
def fitted():
    spec = FeatureSpec(sources=["a", "b"], user_categorical={"gender": ["F", "M"]})
    x, y, g = _lists(spec, 120, 40, seed=0)
    xv, yv, gv = _lists(spec, 40, 40, seed=1)
    ranker = LambdaRanker(spec, num_boost_round=300, early_stopping_rounds=20, num_threads=1)
    ranker.fit(x, y, g, valid=(xv, yv, gv))
    return spec, ranker, (xv, yv)


def test_learns_the_informative_feature(fitted) -> None:
    _spec, ranker, (xv, yv) = fitted
    learned = _ndcg10(ranker.predict(xv), yv, 40)
    shuffled = _ndcg10(np.random.default_rng(3).random(len(yv)), yv, 40)
    assert learned > shuffled + 0.3
    assert ranker.importance()[0]["feature"] == "cat_rate_max"
    assert 1 <= ranker.best_iteration_ < 300  # early stopping picked an iteration
    assert ranker.valid_ndcg_ is not None and ranker.valid_ndcg_ > 0.5


def test_contributions_sum_to_the_score_and_name_features(fitted) -> None:
    spec, ranker, (xv, _) = fitted
    contrib = ranker.contributions(xv[:7])
    assert contrib.shape == (7, len(spec.names) + 1)
    np.testing.assert_allclose(contrib.sum(axis=1), ranker.predict(xv[:7]), rtol=1e-6, atol=1e-6)
    top = ranker.top_contributions(xv[:2], top=3)
    assert len(top) == 2 and len(top[0]) == 3
    assert top[0][0]["feature"] in spec.names
    assert abs(top[0][0]["contribution"]) >= abs(top[0][2]["contribution"])


def test_save_load_round_trip_is_text_and_json(fitted, tmp_path) -> None:
    spec, ranker, (xv, _) = fitted
    ranker.save(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ranker.json", "ranker.txt"]
    assert (tmp_path / "ranker.txt").read_text().startswith("tree")
    meta = json.loads((tmp_path / "ranker.json").read_text())
    assert meta["feature_spec"]["names"] == spec.names
    loaded = LambdaRanker.load(tmp_path)
    np.testing.assert_array_equal(loaded.predict(xv), ranker.predict(xv))
    assert loaded.spec == spec


def test_load_refuses_a_model_that_disagrees_with_its_spec(fitted, tmp_path) -> None:
    _, ranker, _ = fitted
    ranker.save(tmp_path)
    meta = json.loads((tmp_path / "ranker.json").read_text())
    meta["feature_spec"]["sources"] = ["a"]
    meta["feature_spec"].pop("names")
    (tmp_path / "ranker.json").write_text(json.dumps(meta))
    with pytest.raises(BundleError, match="features differ"):
        LambdaRanker.load(tmp_path)
    (tmp_path / "ranker.json").unlink()
    with pytest.raises(BundleError, match="ranker.json"):
        LambdaRanker.load(tmp_path)


def test_bad_shapes_and_unfitted_use_are_errors() -> None:
    spec = FeatureSpec(sources=["a"])
    ranker = LambdaRanker(spec)
    with pytest.raises(NotFittedError):
        ranker.predict(np.zeros((1, len(spec.names)), np.float32))
    with pytest.raises(ValueError, match="columns"):
        ranker.fit(np.zeros((4, 3), np.float32), np.zeros(4), np.array([4]))
    with pytest.raises(ValueError, match="groups"):
        ranker.fit(np.zeros((4, len(spec.names)), np.float32), np.zeros(4), np.array([3]))


def test_spec_json_round_trip_and_version_check() -> None:
    spec = FeatureSpec(sources=["x"], item_numeric=["price"], numeric_bins={"age": [20.0, 30.0]})
    again = FeatureSpec.from_json(json.loads(json.dumps(spec.to_json())))
    assert again == spec and again.names == spec.names
    bad = spec.to_json() | {"version": 99}
    with pytest.raises(BundleError, match="version"):
        FeatureSpec.from_json(bad)


def test_compiled_trees_give_the_same_scores(fitted) -> None:
    _, ranker, (xv, _) = fitted
    expected = ranker.predict(xv)
    clone = LambdaRanker(ranker.spec)
    clone.booster_, clone.best_iteration_ = ranker.booster_, ranker.best_iteration_
    assert clone.compile()
    np.testing.assert_allclose(clone.predict(xv), expected, rtol=1e-6, atol=1e-6)


def test_init_weights_make_a_residual_ranker(tmp_path) -> None:
    """With init_weights the trees start from a fixed blend of columns (NaN -> init_fill):
    predict = blend + trees, contributions still sum to predict, and the blend survives save/load."""
    spec = FeatureSpec(sources=["a", "b"], user_categorical={"gender": ["F", "M"]})
    x, y, g = _lists(spec, 120, 40, seed=0)
    xv, yv, gv = _lists(spec, 40, 40, seed=1)
    a = spec.names.index("src_a_z")
    x[::5, a] = np.nan
    w = {"src_a_z": 2.0, "not_a_feature": 5.0, "src_b_z": 0.0}  # unknown names and zeros dropped
    ranker = LambdaRanker(spec, num_boost_round=3, num_threads=1, init_weights=w, init_fill=-4.0)
    assert ranker.init_weights == {"src_a_z": 2.0}
    blend = ranker.init_score(x)
    np.testing.assert_allclose(blend, np.where(np.isnan(x[:, a]), -8.0, 2.0 * x[:, a]))
    ranker.fit(x, y, g, valid=(xv, yv, gv))
    trees = ranker.booster_.predict(xv, num_iteration=ranker.best_iteration_)
    np.testing.assert_allclose(ranker.predict(xv), trees + ranker.init_score(xv), rtol=1e-9)
    np.testing.assert_allclose(ranker.contributions(xv[:5]).sum(axis=1), ranker.predict(xv[:5]),
                               rtol=1e-6, atol=1e-6)
    plain = LambdaRanker(spec, num_boost_round=3, num_threads=1).fit(x, y, g)
    assert not np.allclose(plain.predict(xv), ranker.predict(xv))  # the blend changes the scores
    ranker.save(tmp_path)
    loaded = LambdaRanker.load(tmp_path)
    assert loaded.init_weights == {"src_a_z": 2.0} and loaded.init_fill == -4.0
    np.testing.assert_allclose(loaded.predict(xv), ranker.predict(xv), rtol=1e-9)
    meta = json.loads((tmp_path / "ranker.json").read_text())
    meta["init_weights"] = {"src_c_z": 1.0}
    (tmp_path / "ranker.json").write_text(json.dumps(meta))
    with pytest.raises(BundleError, match="src_c_z"):
        LambdaRanker.load(tmp_path)


def test_compiled_prediction_leaves_no_reference_cycles(fitted) -> None:
    """lleaves' own predict passes ``ndarray.ctypes.data_as`` pointers, which leave reference
    cycles (~2 per call): in a serving worker they kept the cyclic collector running full
    collections. The compiled path calls the trees' entry point with plain addresses: the same
    scores, nothing for the collector."""
    import gc

    _, ranker, (xv, _) = fitted
    clone = LambdaRanker(ranker.spec)
    clone.booster_, clone.best_iteration_ = ranker.booster_, ranker.best_iteration_
    assert clone.compile() and clone._entry is not None
    rows = np.asarray(xv[:50], np.float64)
    expected = clone.compiled_.predict(rows, n_jobs=1)  # lleaves' own path
    gc.collect()
    enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(100):
            got = clone.predict(rows)
        leaked = gc.collect()
    finally:
        if enabled:
            gc.enable()
    np.testing.assert_allclose(got, expected + (clone.init_score(rows) if clone.init_weights else 0), rtol=1e-9)
    assert leaked == 0, f"{leaked} objects in reference cycles after 100 predictions"
    gc.disable()
    try:  # the check can fail: lleaves' own predict does leave cycles
        for _ in range(100):
            clone.compiled_.predict(rows, n_jobs=1)
        assert gc.collect() > 0
    finally:
        if enabled:
            gc.enable()
    assert clone.predict(rows[:0]).shape == (0,)  # no rows: lleaves' path, an empty answer
