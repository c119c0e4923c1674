"""Two-tower auxiliary time-neighbour loss (sequence_weight / sequence_window / sequence_batch /
sequence_context; winnow.models.two_tower.sequence).

The order world: every user touches every item, so co-occurrence says nothing; only the time
order does: items come in pairs (2k, 2k + 1) that are always adjacent in a user's history.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from winnow.core.config import load_config
from winnow.core.errors import ConfigError
from winnow.data.interactions import Interactions
from winnow.models.two_tower import TwoTowerRecommender
from winnow.models.two_tower.sequence import SequenceLoss, SequencePairs, make_sequence_loss

from tests.unit.test_two_tower import MASKED, N_USERS, world  # noqa: F401

N_ORDER_USERS, N_ORDER_ITEMS = 30, 16
ORDER = {"dim": 8, "embedding": 8, "hidden": 16, "hidden_layers": 0, "epochs": 40, "patience": 40,
         "batch_size": 8, "learning_rate": 0.02, "temperature": 0.2, "history": 16, "half_life": 1000.0,
         "user_buckets": 101, "attr_buckets": 11, "creator_buckets": 8, "text_backend": "none",
         "objective": "masked", "mask_fraction": 0.5, "validation": "none",
         "use_user_id": False, "init_std": 0.05, "id_dropout": 0.0, "seed": 0,
         "sequence_window": 1, "sequence_batch": 256}


@pytest.fixture(scope="module")
def order_world() -> Interactions:
    rng = np.random.default_rng(1)
    users, items, ts = [], [], []
    for u in range(N_ORDER_USERS):
        seq = []
        for k in rng.permutation(N_ORDER_ITEMS // 2):
            seq += list(rng.permutation([2 * k, 2 * k + 1]))
        users += [u] * len(seq)
        items += seq
        ts += list(1_700_000_000 + 60 * np.arange(len(seq)))
    return Interactions.from_arrays(np.array(users), np.array(items), timestamp=np.array(ts),
                                    n_users=N_ORDER_USERS, n_items=N_ORDER_ITEMS)


def _partner_hit_rate(model: TwoTowerRecommender) -> float:
    """Share of items i whose best-scored other item for the one-item history [i] is its pair."""
    hits = []
    for i in range(N_ORDER_ITEMS):
        s = model.item_vectors_ @ model.user_vector(history=[i]) + model.item_bias_
        s[i] = -np.inf
        hits.append(int(np.argmax(s)) == (i ^ 1))
    return float(np.mean(hits))


def test_pairs_are_time_neighbours_within_the_window() -> None:
    # user 0: items 5 (t=3), 7 (t=1), 9 (t=2), 5 again (t=4); user 1: 2 and 1 (t=1, a tie)
    user, item, ts = np.array([0, 0, 0, 0, 1, 1]), np.array([5, 7, 9, 5, 2, 1]), np.array([3, 1, 2, 4, 1, 1])
    p = SequencePairs.build(user, item, ts, window=1)  # order: u0 7, 9, 5, 5 ; u1 1, 2
    assert sorted(zip(p.first.tolist(), p.second.tolist())) == sorted(
        [(7, 9), (9, 7), (9, 5), (5, 9), (1, 2), (2, 1)])  # 5 -> 5 dropped, no pair across users
    p2 = SequencePairs.build(user, item, ts, window=2)
    assert (7, 5) in set(zip(p2.first.tolist(), p2.second.tolist())) and len(p2) == 10
    # ties: a seeded random order, not the item index (which may encode the data set's own lists)
    tie_u, tie_i, tie_t = np.zeros(40, np.int64), np.arange(40), np.zeros(40, np.int64)
    orders = [SequencePairs.build(tie_u, tie_i, tie_t, window=1, seed=s) for s in (0, 0, 1)]
    np.testing.assert_array_equal(orders[0].first, orders[1].first)
    assert not np.array_equal(orders[0].first, orders[2].first)
    assert np.mean(np.abs(orders[0].first - orders[0].second) == 1) < 0.5
    assert len(SequencePairs.build(user[:1], item[:1], ts[:1], window=3)) == 0
    assert len(SequencePairs.build(user[:0], item[:0], ts[:0], window=3)) == 0


def test_zero_weight_is_the_old_model(world) -> None:  # noqa: F811
    inter, items, users = world
    base = {**MASKED, "epochs": 4, "patience": 4}
    assert make_sequence_loss(TwoTowerRecommender(**base).config, inter.user, inter.item, inter.timestamp, {}) is None
    a = TwoTowerRecommender(**base).with_side_info(items, users).fit(inter)
    b = TwoTowerRecommender(**base, sequence_weight=0.0, sequence_window=7, sequence_batch=5,
                            sequence_context="item").with_side_info(items, users).fit(inter)
    np.testing.assert_array_equal(a._score(np.arange(N_USERS)), b._score(np.arange(N_USERS)))
    c = TwoTowerRecommender(**base, sequence_weight=0.5).with_side_info(items, users).fit(inter)
    assert not np.allclose(a.item_vectors_, c.item_vectors_, atol=1e-4)  # the loss changes the vectors


def test_history_context_learns_the_time_order(order_world: Interactions) -> None:
    off = TwoTowerRecommender(**ORDER).fit(order_world)
    on = TwoTowerRecommender(**ORDER, sequence_weight=1.0).fit(order_world)
    # co-occurrence carries nothing here (every user has every item); only the order does
    assert _partner_hit_rate(off) <= 0.4
    assert _partner_hit_rate(on) >= 0.8


def test_item_context_pulls_item_vectors_together(order_world: Interactions) -> None:
    m = TwoTowerRecommender(**ORDER, sequence_weight=1.0, sequence_context="item").fit(order_world)
    ids, _ = m.similar_items(np.arange(N_ORDER_ITEMS), 1)
    assert (ids[:, 0] == (np.arange(N_ORDER_ITEMS) ^ 1)).mean() >= 0.8


def test_next_item_objective_takes_the_loss_too(order_world: Interactions) -> None:
    cfg = {**ORDER, "objective": "next_item", "validation": "temporal", "epochs": 3, "patience": 3}
    a = TwoTowerRecommender(**cfg).fit(order_world)
    b = TwoTowerRecommender(**cfg, sequence_weight=1.0).fit(order_world)
    assert not np.allclose(a.item_vectors_, b.item_vectors_, atol=1e-4)


def test_loss_masks_the_context_item_and_scales_with_weight() -> None:
    from winnow.models.two_tower.towers import TwoTower

    torch.manual_seed(0)
    net = TwoTower(n_items=4, n_categories=1, creator_buckets=4, text_dim=0, user_buckets=5, attr_buckets=5,
                   emb=4, hidden=4, dim=4, layers=0)
    items = {"cats": torch.zeros(4, 1, dtype=torch.int64), "creator": torch.zeros(4, dtype=torch.int64),
             "age": torch.zeros(4, dtype=torch.int64), "pop": torch.ones(4, dtype=torch.int64),
             "text": torch.zeros(4, 0)}
    pairs = SequencePairs(np.array([0]), np.array([1]))
    one = SequenceLoss(pairs, items, weight=1.0, batch=3, context="item", temperature=0.5, seed=0)(net).detach()
    two = SequenceLoss(pairs, items, weight=2.0, batch=3, context="item", temperature=0.5, seed=0)(net).detach()
    assert float(two) == pytest.approx(2 * float(one), rel=1e-6)
    with torch.no_grad():  # by hand: softmax over items 1..3 (item 0, the context, masked out)
        from winnow.models.two_tower.train import item_vectors

        v = torch.from_numpy(item_vectors(net, items, content_only=False))
        logits = v[0] @ v[1:].T / 0.5
        assert float(one) == pytest.approx(float(-torch.log_softmax(logits, 0)[0]), rel=1e-5)
    assert float(SequenceLoss(SequencePairs(np.zeros(0, np.int64), np.zeros(0, np.int64)), items, weight=1.0,
                              batch=3, context="item", temperature=0.5, seed=0)(net)) == 0.0


def test_sequence_options_saved_and_loaded(order_world: Interactions, tmp_path: Path) -> None:
    from winnow.models.registry import load_model

    m = TwoTowerRecommender(**{**ORDER, "epochs": 2, "sequence_weight": 0.4, "sequence_window": 2,
                               "sequence_batch": 64, "sequence_context": "item"}).fit(order_world)
    m.save(tmp_path / "tt")
    loaded = load_model(tmp_path / "tt")
    c = loaded.config
    assert (c.sequence_weight, c.sequence_window, c.sequence_batch, c.sequence_context) == (0.4, 2, 64, "item")
    np.testing.assert_allclose(loaded._score(np.arange(N_ORDER_USERS)), m._score(np.arange(N_ORDER_USERS)),
                               atol=1e-5)


@pytest.mark.parametrize("field,value", [("sequence_weight", -0.1), ("sequence_weight", 101.0),
                                         ("sequence_window", 0), ("sequence_batch", 0),
                                         ("sequence_context", "user")])
def test_bad_sequence_options_raise_config_error(field: str, value: object) -> None:
    with pytest.raises(ConfigError, match=rf"models\.two_tower\.{field}"):
        load_config("/tmp/winnow-h10-test", environ={}, overrides={"models": {"two_tower": {field: value}}})


def test_validation_none_trains_all_epochs_on_all_events(order_world: Interactions) -> None:
    from winnow.models.two_tower.masked import validation_mask

    assert validation_mask(order_world, "none", 0.9, seed=0).all()
    m = TwoTowerRecommender(**{**ORDER, "epochs": 3}).fit(order_world)  # ORDER: validation "none"
    assert m.history_["refit_epochs"] == 3 and "best_epoch" not in m.history_
    with pytest.raises(ConfigError, match=r"models\.two_tower\.validation"):
        load_config("/tmp/winnow-h10-test", environ={}, overrides={"models": {"two_tower": {"validation": "off"}}})


def test_epoch_average_is_the_mean_of_the_last_epochs() -> None:
    from winnow.models.two_tower.averaging import EpochAverage, epoch_average

    net = torch.nn.Linear(2, 1)
    avg = EpochAverage(2, 4)  # epochs 2 and 3 of 0..3
    for epoch, w in enumerate([10.0, 20.0, 1.0, 4.0]):
        with torch.no_grad():
            net.weight.fill_(w)
            net.bias.fill_(-w)
        avg.add(net, epoch)
    avg.apply(net)
    np.testing.assert_allclose(net.weight.detach().numpy(), 2.5)
    np.testing.assert_allclose(net.bias.detach().numpy(), -2.5)
    assert epoch_average(0, 10, False) is None and epoch_average(3, 10, True) is None


def test_average_epochs_in_training(order_world: Interactions) -> None:
    cfg = {**ORDER, "epochs": 6, "sequence_weight": 1.0}
    last = TwoTowerRecommender(**cfg).fit(order_world)
    one = TwoTowerRecommender(**cfg, average_epochs=1).fit(order_world)  # the mean of the last epoch only
    np.testing.assert_array_equal(last.item_vectors_, one.item_vectors_)
    four = TwoTowerRecommender(**cfg, average_epochs=4).fit(order_world)
    assert not np.allclose(last.item_vectors_, four.item_vectors_, atol=1e-4)
    nxt = {**cfg, "objective": "next_item"}
    a = TwoTowerRecommender(**nxt).fit(order_world)
    b = TwoTowerRecommender(**nxt, average_epochs=4).fit(order_world)
    assert not np.allclose(a.item_vectors_, b.item_vectors_, atol=1e-4)
    with pytest.raises(ConfigError, match=r"models\.two_tower\.average_epochs"):
        load_config("/tmp/winnow-h10-test", environ={}, overrides={"models": {"two_tower": {"average_epochs": -1}}})
