"""The two-tower's bounded training stream (``max_train_events``, two_tower/stream.py) and early
stopping (two_tower/stopping.py), on the tiny two-group world of test_two_tower.py (420 events).

- below the budget the training run is the one it was before the budget existed (same weights);
- above it every run sees at most the budget, a seeded sample: same seed, same model;
- both objectives stop after ``patience`` epochs without a better validation score and keep the
  best epoch's weights;
- bad values are refused at start-up with the key named.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from winnow.core.config import load_config
from winnow.core.errors import ConfigError
from winnow.models.two_tower import TwoTowerRecommender
from winnow.models.two_tower.masked import UserSets, train_masked
from winnow.models.two_tower.stream import epoch_quota, epoch_rows, recency_weights, take_users
from winnow.models.two_tower.train import EventArrays, train_epochs

from tests.unit.test_two_tower import MASKED, SMALL, world  # noqa: F401

NEXT = {**SMALL, "epochs": 6, "patience": 6, "refit": True, "text_backend": "none"}
MASK = {**MASKED, "epochs": 6, "patience": 6, "text_backend": "none"}


def _fit(world, **params) -> TwoTowerRecommender:  # noqa: F811
    inter, items, users = world
    return TwoTowerRecommender(**params).with_side_info(items, users).fit(inter)


def _same_weights(a: TwoTowerRecommender, b: TwoTowerRecommender) -> bool:
    sa, sb = a.net_.state_dict(), b.net_.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


# --- the stream -------------------------------------------------------------------------------
def test_quota_binds_only_above_the_budget() -> None:
    assert epoch_quota(100, 10, None) is None
    assert epoch_quota(100, 10, 1000) is None          # 100 x 10 fits exactly
    assert epoch_quota(101, 10, 1000) == 100
    assert epoch_quota(5000, 30, 6000) == 200


def test_unbounded_epoch_is_the_old_permutation() -> None:
    a, b = np.random.default_rng(7), np.random.default_rng(7)
    np.testing.assert_array_equal(epoch_rows(1000, None, a), b.permutation(1000))
    assert a.random() == b.random()                      # and the generator moved on identically


@pytest.mark.parametrize("weighted", [False, True])
def test_sample_is_distinct_seeded_and_sized(weighted: bool) -> None:
    ts = np.arange(10_000) * 60
    w = recency_weights(ts) if weighted else None
    rows = epoch_rows(10_000, 700, np.random.default_rng(1), w)
    assert len(rows) == 700 and len(np.unique(rows)) == 700 and rows.min() >= 0 and rows.max() < 10_000
    np.testing.assert_array_equal(rows, epoch_rows(10_000, 700, np.random.default_rng(1), w))
    assert not np.array_equal(rows, epoch_rows(10_000, 700, np.random.default_rng(2), w))


def test_recent_sampling_prefers_recent_events() -> None:
    ts = np.arange(20_000) * 60
    w = recency_weights(ts)
    assert w.max() == 1.0 and w[np.argsort(ts)[len(ts) // 2]] == pytest.approx(0.5, abs=0.01)
    uniform = epoch_rows(20_000, 2000, np.random.default_rng(0))
    recent = epoch_rows(20_000, 2000, np.random.default_rng(0), w)
    assert ts[recent].mean() > ts[uniform].mean() + 0.05 * ts.max()  # expected +0.09
    assert (recency_weights(np.full(5, 3)) == 1).all()


def test_take_users_fills_the_quota_with_whole_users() -> None:
    rows_per_user = np.array([3, 5, 2, 4])
    users = np.array([2, 0, 3, 1])
    np.testing.assert_array_equal(take_users(users, rows_per_user, 9), [2, 0, 3])  # 2 + 3 + 4
    np.testing.assert_array_equal(take_users(users, rows_per_user, None), users)
    np.testing.assert_array_equal(take_users(np.array([1, 0]), rows_per_user, 4), [1])  # at least one


# --- the budget in training ---------------------------------------------------------------------
@pytest.mark.parametrize("params", [NEXT, MASK], ids=["next_item", "masked"])
def test_below_the_budget_training_is_unchanged(world, params) -> None:  # noqa: F811
    unbounded = _fit(world, **params, max_train_events=0)
    budget = 420 * params["epochs"]                      # the whole world, every epoch: does not bind
    bounded = _fit(world, **params, max_train_events=budget)
    assert _same_weights(unbounded, bounded)
    assert unbounded.history_["loss"] == bounded.history_["loss"]
    assert bounded.history_["events_seen"] == unbounded.history_["events_seen"] > 0


@pytest.mark.parametrize("params", [NEXT, MASK], ids=["next_item", "masked"])
def test_above_the_budget_each_run_sees_at_most_the_budget(world, params) -> None:  # noqa: F811
    full = _fit(world, **params, max_train_events=0)
    small = _fit(world, **params, max_train_events=1000)  # quota 1000 // 6 = 166 of ~380-420 rows
    h = small.history_
    assert 0 < h["events_seen"] <= 1000 and 0 < h["refit_events_seen"] <= 1000
    assert h["events_seen"] < full.history_["events_seen"]
    if params.get("objective", "next_item") == "next_item":               # exactly the quota per epoch
        assert h["events_seen"] == 166 * len(h["loss"])
    again = _fit(world, **params, max_train_events=1000)
    assert _same_weights(small, again) and again.history_["loss"] == h["loss"]  # seeded sample
    other = _fit(world, **{**params, "seed": 1}, max_train_events=1000)
    assert not _same_weights(small, other)


def test_recent_sampling_trains_and_is_reproducible(world) -> None:  # noqa: F811
    a = _fit(world, **NEXT, max_train_events=1000, budget_sampling="recent")
    b = _fit(world, **NEXT, max_train_events=1000, budget_sampling="recent")
    u = _fit(world, **NEXT, max_train_events=1000)
    assert _same_weights(a, b) and not _same_weights(a, u)
    assert a.history_["events_seen"] <= 1000


# --- early stopping -----------------------------------------------------------------------------
class _Script:
    """A validation callback returning scripted scores and recording the weights it scored."""

    def __init__(self, net: torch.nn.Module, scores: list[float]) -> None:
        self.net, self.scores, self.states = net, scores, []

    def __call__(self) -> float:
        self.states.append({k: v.detach().clone() for k, v in self.net.state_dict().items()})
        return self.scores[len(self.states) - 1]


@pytest.mark.parametrize("objective", ["next_item", "masked"])
def test_early_stop_after_patience_epochs_without_improvement(world, objective: str) -> None:  # noqa: F811
    inter, items, users = world
    params = {**(NEXT if objective == "next_item" else MASK), "epochs": 20, "patience": 3}
    m = TwoTowerRecommender(**params).with_side_info(items, users)
    table = m._item_table(inter)
    m._user_tables(inter, table.cats)
    tensors = table.tensors()
    m.net_ = m.build_net(table, inter.n_items)
    script = _Script(m.net_, [0.10, 0.30, 0.20, 0.30, 0.25, 0.99, 0.99])  # best at epoch 1, then 3 misses
    if objective == "next_item":
        ev = EventArrays.build(inter.user, inter.item, inter.timestamp)
        h = train_epochs(m.net_, ev, tensors, np.bincount(inter.item, minlength=inter.n_items), m._user_inputs,
                         m._settings(), validate=script)
    else:
        sets = UserSets.build(inter.user, inter.item, inter.timestamp, inter.weight,
                              n_users=inter.n_users, n_items=inter.n_items)
        h = train_masked(m.net_, sets, tensors, m._user_inputs, m._settings(), weighted=False, validate=script)
    assert len(h["loss"]) == 5 and h["validation_ndcg"] == [0.10, 0.30, 0.20, 0.30, 0.25]
    assert h["best_epoch"] == 1 and h["validation_seconds"] >= 0
    best = script.states[1]
    assert all(torch.equal(m.net_.state_dict()[k], best[k]) for k in best)   # the best epoch's weights
    assert not all(torch.equal(script.states[4][k], best[k]) for k in best)  # (which differ from the last)


# --- configuration ------------------------------------------------------------------------------
@pytest.mark.parametrize("toml, key", [
    ("max_train_events = 10", "max_train_events = 10 is below epochs x batch_size = 30720"),
    ("max_train_events = -5", "models.two_tower.max_train_events"),
    ('budget_sampling = "newest"', "models.two_tower.budget_sampling"),
    ('objective = "masked"\nbudget_sampling = "recent"', "budget_sampling"),
])
def test_bad_budget_config_names_the_key(tmp_path: Path, toml: str, key: str) -> None:
    (tmp_path / "winnow.toml").write_text(f"[models.two_tower]\n{toml}\n")
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_config(tmp_path, environ={})


def test_default_budget_is_set_and_passed_to_training() -> None:
    st = TwoTowerRecommender()._settings()
    assert st.max_events == 4_000_000 and st.sampling == "uniform"
    assert TwoTowerRecommender(max_train_events=0)._settings().max_events is None  # 0 = no budget


def test_local_engine_reports_the_runs(world) -> None:  # noqa: F811
    from winnow.engine import LocalEngine

    inter, items, users = world
    model = TwoTowerRecommender(**NEXT, max_train_events=1000).with_side_info(items, users)
    fitted, report = LocalEngine().fit_two_tower(model, inter)
    h = fitted.history_
    assert report["max_train_events"] == 1000 and report["events_seen"] == h["events_seen"] <= 1000
    assert report["epochs"] == len(h["loss"]) and report["best_epoch"] == h["best_epoch"]
    assert report["refit_events_seen"] == h["refit_events_seen"] <= 1000
    assert report["best_validation_ndcg"] == round(max(h["validation_ndcg"]), 5)
    assert report["seconds"] >= report["validation_seconds"] >= 0


# --- bounded validation ------------------------------------------------------------------------
def _val_world(n_users: int = 40, n_items: int = 300):
    import scipy.sparse as sp

    rng = np.random.default_rng(3)
    seen = sp.random(n_users, n_items, density=0.05, format="csr", random_state=1, dtype=np.float32)
    test = sp.random(n_users, n_items, density=0.02, format="csr", random_state=2, dtype=np.float32)
    return rng.normal(size=(n_users, 8)).astype(np.float32), rng.normal(size=(n_items, 8)).astype(np.float32), \
        rng.normal(size=n_items).astype(np.float32), seen, test


def _ndcg_direct(u, v, bias, seen, test, users) -> float:
    from winnow.metrics import evaluate_recs
    from winnow.models.base import top_k

    scores = u @ v.T + bias
    scores[seen.nonzero()] = -np.inf
    return float(evaluate_recs(top_k(scores, 10)[0], test, k=10, users=users)["ndcg@10"])


def test_validation_is_exact_below_the_item_cap(monkeypatch) -> None:
    from winnow.models.two_tower import validation

    u, v, bias, seen, test = _val_world()
    users = np.arange(len(u))
    assert validation.validation_catalog(test, users, v.shape[0], 300, seed=0) is None
    want = _ndcg_direct(u, v, bias, seen, test, users)
    assert validation.validation_ndcg(u, v, bias, seen, test, users, None) == pytest.approx(want, abs=1e-12)
    monkeypatch.setattr(validation, "BLOCK_CELLS", 7 * v.shape[0])  # blocks of 7 users: same score
    assert validation.validation_ndcg(u, v, bias, seen, test, users, None) == pytest.approx(want, abs=1e-12)
    everything = np.arange(v.shape[0])                                 # a "sample" of every item
    assert validation.validation_ndcg(u, v, bias, seen, test, users, everything) == pytest.approx(want, abs=1e-12)


def test_validation_catalog_above_the_cap_keeps_held_out_items() -> None:
    from winnow.models.two_tower.validation import validation_catalog, validation_ndcg

    u, v, bias, seen, test = _val_world()
    users = np.arange(len(u))
    cat = validation_catalog(test, users, v.shape[0], 250, seed=0)
    assert len(cat) == 250 and len(np.unique(cat)) == 250 and (np.diff(cat) > 0).all()
    assert set(test.indices) <= set(cat)                              # every held-out item is ranked
    np.testing.assert_array_equal(cat, validation_catalog(test, users, v.shape[0], 250, seed=0))
    # scoring on the subset = scoring the full catalog with the other items removed
    keep = np.zeros(v.shape[0], bool)
    keep[cat] = True
    masked_bias = np.where(keep, bias, -np.inf).astype(np.float32)
    want = _ndcg_direct(u, v, masked_bias, seen, test, users)
    assert validation_ndcg(u, v[cat], bias[cat], seen, test, users, cat) == pytest.approx(want, abs=1e-12)
