"""Warm starts of ALS (winnow.components.als, winnow.models.als) on a grown catalog: carried rows,
new rows, fewer iterations, quality on real data within the noise of cold fits, and the cold
fall-back with its reason (winnow.components.warm, winnow.bundle.warm)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from winnow.bundle.warm import WarmSource, carried_rows, choose_warm_source
from winnow.components import FitContext, component
from winnow.core.config import load_config
from winnow.core.errors import BundleError
from winnow.core.ids import IdMap
from winnow.data.interactions import Dataset, Interactions
from winnow.evaluation.datasets import read_directory
from winnow.evaluation.warm_split import GrownSplit, grown_split, holdout_metrics
from winnow.models.als import ALSRecommender, warm_factors



def _cfg(tmp_path: Path, **als):
    cfg = load_config(home=tmp_path)
    models = cfg.models.model_copy(update={"als": cfg.models.als.model_copy(update=als)})
    return cfg.model_copy(update={"models": models})


def _source(split: GrownSplit, model) -> WarmSource:
    return WarmSource("20260101T000000Z-abcdef", Path("."), "0" * 64, {}, split.previous.user_ids,
                      split.previous.item_ids, {"als": model})


def _current(split: GrownSplit) -> Dataset:
    return Dataset("current", split.train, split.current.user_ids, split.current.item_ids)


def test_carried_rows_follow_ids_not_indices() -> None:
    prev = IdMap("item", ["a", "b", "c", "d"])
    cur = IdMap("item", ["d", "x", "b", "a", "y"])  # reordered, "c" gone, "x" and "y" new
    new, old = carried_rows(prev, cur)
    assert new.tolist() == [0, 2, 3] and old.tolist() == [3, 1, 0]
    new, old = carried_rows(prev, cur, n_previous=2)  # only the previous model's first two rows
    assert new.tolist() == [2, 3] and old.tolist() == [1, 0]


def test_warm_factors_copy_known_rows_and_draw_new_ones_at_the_cold_scale() -> None:
    prev = np.random.default_rng(1).normal(size=(4, 3)).astype(np.float32)
    out = warm_factors(prev, 6, np.array([5, 0]), np.array([1, 3]), seed=0)
    assert out.dtype == np.float32 and out.shape == (6, 3)
    np.testing.assert_array_equal(out[5], prev[1])
    np.testing.assert_array_equal(out[0], prev[3])
    fresh = out[[1, 2, 3, 4]]
    assert (fresh >= 0).all() and (fresh < 0.01).all()  # implicit 0.7's cold init: uniform [0, 0.01)


@pytest.fixture(scope="module")
def split(tmp_path_factory, ml_latest_small) -> GrownSplit:
    imp = read_directory(ml_latest_small)
    cfg = load_config(home=tmp_path_factory.mktemp("home"))
    return grown_split(imp.events, imp.items, imp.users, cfg.events, previous=0.7, current=0.8)


@pytest.fixture(scope="module")
def previous(split: GrownSplit) -> ALSRecommender:
    return ALSRecommender().fit(split.previous.interactions)


@pytest.mark.realdata
def test_warm_als_starts_from_the_previous_factors_and_new_items_get_fresh_rows(
        split: GrownSplit, previous: ALSRecommender, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from implicit.cpu.als import AlternatingLeastSquares

    seen: dict[str, np.ndarray] = {}
    real_fit = AlternatingLeastSquares.fit

    def spy(self, user_items, *a, **kw):  # what implicit starts its first iteration from
        seen["users"], seen["items"] = self.user_factors.copy(), self.item_factors.copy()
        seen["iterations"] = self.iterations
        return real_fit(self, user_items, *a, **kw)

    monkeypatch.setattr(AlternatingLeastSquares, "fit", spy)
    ctx = FitContext(_cfg(tmp_path, warm_iterations=3), _current(split), warm=_source(split, previous))
    model = component("als").fit(ctx)
    monkeypatch.undo()
    new_rows, old_rows = carried_rows(split.previous.item_ids, split.current.item_ids)
    assert len(new_rows) == len(split.previous.item_ids) < len(split.current.item_ids)  # the catalog grew
    np.testing.assert_array_equal(seen["items"][new_rows], previous.item_factors_[old_rows])
    fresh = np.setdiff1d(np.arange(len(split.current.item_ids)), new_rows)
    assert (seen["items"][fresh] >= 0).all() and (seen["items"][fresh] < 0.01).all()
    u_new, u_old = carried_rows(split.previous.user_ids, split.current.user_ids)
    np.testing.assert_array_equal(seen["users"][u_new], previous.user_factors_[u_old])
    assert seen["iterations"] == 3 == model.iterations_run_
    rec = ctx.warm_reports["als"]
    assert rec["mode"] == "warm" and rec["iterations"] == 3
    assert rec["from"] == {"version": "20260101T000000Z-abcdef", "sha256": "0" * 64}
    assert rec["items"] == {"carried": len(new_rows), "new": len(fresh)}
    assert rec["users"]["carried"] == len(u_new)
    # implicit kept the preset factors (it did not re-initialise them): after its iterations the
    # carried items are still close to where they started, unlike a cold fit's
    cold = ALSRecommender(seed=0).fit(split.train)

    def agreement(f: np.ndarray) -> float:
        a, b = f[new_rows], previous.item_factors_[old_rows]
        return float(np.median(np.sum(a * b, 1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + 1e-12)))

    assert agreement(model.item_factors_) > 0.8 > agreement(cold.item_factors_)


@pytest.mark.realdata
def test_warm_als_with_fewer_iterations_is_within_the_noise_of_cold_fits(
        split: GrownSplit, previous: ALSRecommender, tmp_path: Path) -> None:
    cold = [holdout_metrics(ALSRecommender(seed=s).fit(split.train), split.train, split.test) for s in range(3)]
    cfg = _cfg(tmp_path)
    ctx = FitContext(cfg, _current(split), warm=_source(split, previous))
    warm_model = component("als").fit(ctx)
    assert warm_model.iterations_run_ == cfg.models.als.warm_iterations < cfg.models.als.iterations
    warm = holdout_metrics(warm_model, split.train, split.test)
    assert warm["users"] >= 20
    for m in ("recall", "ndcg"):
        values = np.array([c[m] for c in cold])
        assert values.max() > 0
        # not worse than the cold fits beyond their seed-to-seed spread
        assert warm[m] >= values.mean() - 3 * values.std() - 0.01 * values.mean(), (m, warm, cold)


def _tiny() -> tuple[Dataset, ALSRecommender]:
    rng = np.random.default_rng(0)
    inter = Interactions.from_arrays(rng.integers(0, 30, 400), rng.integers(0, 20, 400),
                                     timestamp=np.arange(400), n_users=30, n_items=20)
    ds = Dataset("tiny", inter, IdMap("user", [f"u{i}" for i in range(30)]),
                 IdMap("item", [f"i{i}" for i in range(20)]))
    return ds, ALSRecommender(factors=8, iterations=3).fit(inter)


def test_a_changed_factor_count_falls_back_to_cold_and_says_why(tmp_path: Path,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    ds, prev = _tiny()
    src = WarmSource("20260101T000000Z-abcdef", Path("."), "1" * 64, {}, ds.user_ids, ds.item_ids, {"als": prev})
    ctx = FitContext(_cfg(tmp_path, factors=16, iterations=4), ds, warm=src)
    with caplog.at_level("INFO", logger="winnow.components.warm"):
        model = component("als").fit(ctx)
    rec = ctx.warm_reports["als"]
    assert rec["mode"] == "cold" and rec["iterations"] == 4 == model.iterations_run_
    assert "factors changed" in rec["reason"] and "8" in rec["reason"] and "16" in rec["reason"]
    assert rec["from"]["version"] == "20260101T000000Z-abcdef"
    assert model.item_factors_.shape == (20, 16)
    assert any("cold" in r.message and "factors changed" in r.message for r in caplog.records)


def test_a_previous_model_of_another_dtype_or_none_is_cold(tmp_path: Path) -> None:
    ds, prev = _tiny()
    prev.item_factors_ = prev.item_factors_.astype(np.float64)
    src = WarmSource("v", Path("."), "", {}, ds.user_ids, ds.item_ids, {"als": prev})
    ctx = FitContext(_cfg(tmp_path, factors=8), ds, warm=src)
    component("als").fit(ctx)
    assert ctx.warm_reports["als"]["mode"] == "cold" and "float64" in ctx.warm_reports["als"]["reason"]
    empty = FitContext(_cfg(tmp_path, factors=8), ds, warm=WarmSource("v", Path("."), "", {}, ds.user_ids,
                                                                       ds.item_ids, {"als": None}))
    component("als").fit(empty)
    assert empty.warm_reports["als"]["reason"] == "bundle v has no als model"
    off = FitContext(_cfg(tmp_path, factors=8), ds)
    component("als").fit(off)
    assert off.warm_reports["als"] == {"mode": "cold", "from": None, "reason": "warm start off", "iterations": 15}


def test_start_factors_of_the_wrong_shape_are_refused(tmp_path: Path) -> None:
    ds, _ = _tiny()
    model = ALSRecommender(factors=8)
    with pytest.raises(ValueError, match=r"\[n, 8\]"):
        model.start_from(np.zeros((30, 4)), np.zeros((20, 8)))
    model.start_from(np.zeros((29, 8)), np.zeros((20, 8)))
    with pytest.raises(ValueError, match="29 users x 20 items, the training matrix 30 x 20"):
        model.fit(ds.interactions)


def test_warm_source_spec_errors_are_clear(tmp_path: Path) -> None:
    assert choose_warm_source(tmp_path, "off") == (None, "warm start off")
    assert choose_warm_source(tmp_path, "active") == (None, "no active bundle to continue from")
    with pytest.raises(BundleError, match="neither \"active\" nor a bundle directory"):
        choose_warm_source(tmp_path, str(tmp_path / "nope"))
    with pytest.raises(BundleError, match="warm start from .*manifest.json: missing"):
        choose_warm_source(tmp_path, str(tmp_path))
