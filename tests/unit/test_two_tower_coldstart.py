"""Cold-start helpers: segment popularity, the user fallback chain, blending, segment artefacts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from winnow.core.config import ColdStartConfig
from winnow.core.errors import ConfigError, NotFittedError
from winnow.data.interactions import Interactions
from winnow.models.coldstart import (
    SegmentPopularity,
    blend_user_scores,
    chain_rule,
    quantile_merge,
)


def _world() -> tuple[Interactions, list[dict]]:
    """60 "a" users and 20 "b" users; everyone touches item 2; a users item 0, b users item 1,
    so global popularity ranks 2 > 0 > 1 but a b user should get 1 before 0."""
    users, items = [], []
    attrs = [{"seg": "a", "age": 30} if u < 60 else {"seg": "b", "age": 30} for u in range(80)]
    for u in range(80):
        users += [u, u]
        items += [2, 0 if u < 60 else 1]
    inter = Interactions.from_arrays(np.array(users), np.array(items), timestamp=np.arange(160), n_users=82,
                                     n_items=4)
    return inter, attrs + [{"seg": "b", "age": 30}, {}]


def test_segment_popularity_follows_attributes() -> None:
    inter, attrs = _world()
    seg = SegmentPopularity(l2=1.0).fit(inter, attrs)
    s = seg.score([{"seg": "b", "age": 31}, {"seg": "a"}, {}])
    assert s.shape == (3, 4)
    assert s[0, 1] > s[0, 0]  # a b user: b's item before the globally more popular a item
    assert s[1, 0] > s[1, 1]
    assert s[2, 0] > s[2, 1]  # unknown attributes: global popularity
    assert np.argmax(s[2]) == 2


def test_segment_first_events_only() -> None:
    inter, attrs = _world()  # each user's first event (time order) is item 2
    s = SegmentPopularity(l2=1.0, first=1).fit(inter, attrs).score([{"seg": "a"}])
    assert np.argmax(s[0]) == 2 and abs(s[0, 0]) < 1e-3


def test_segment_round_trip_and_unfitted(tmp_path: Path) -> None:
    with pytest.raises(NotFittedError):
        SegmentPopularity().score([{}])
    inter, attrs = _world()
    seg = SegmentPopularity(l2=3.0).fit(inter, attrs)
    seg.save(tmp_path / "seg")
    assert {p.suffix for p in (tmp_path / "seg").iterdir()} == {".json", ".npz"}
    np.testing.assert_allclose(SegmentPopularity.load(tmp_path / "seg").score(attrs[:5]), seg.score(attrs[:5]))


def test_chain_rule_and_config_validation() -> None:
    cfg = ColdStartConfig()
    assert chain_rule(cfg, 0) == ["segment_popular"]
    assert chain_rule(cfg, 2) == ["model", "segment_popular"]
    assert chain_rule(cfg, 4) == chain_rule(cfg, 3)
    assert chain_rule(cfg, 500) == ["model"]
    with pytest.raises(ValueError, match="rule for 0 events"):
        ColdStartConfig(user_chain={"1": ["model"]})
    with pytest.raises(ValueError, match="sources must be"):
        ColdStartConfig(user_chain={"0": ["nope"]})
    from winnow.core.config import load_config

    with pytest.raises(ConfigError, match="user_chain"):
        load_config("/nonexistent-home", overrides={"coldstart": {"user_chain": {"x": ["model"]}}}, environ={})


def test_blend_weight_moves_to_the_model_with_events() -> None:
    model = np.array([[0.0, 1.0, 2.0]] * 3)
    segment = np.array([[2.0, 1.0, 0.0]] * 3)
    out = blend_user_scores(model, segment, np.array([0, 3, 1000]), k=3.0)
    assert np.argmax(out[0]) == 0 and np.argmax(out[2]) == 2
    np.testing.assert_allclose(out[1], 0.0, atol=1e-6)  # n = k: equal weights cancel here


def test_quantile_merge_places_cold_items_by_two_tower_rank() -> None:
    warm_scores = np.array([[10.0, 5.0, 1.0, 0.0]], np.float32)
    tt = np.array([[0.9, 0.5, 0.1, 0.6]], np.float32)  # item 3 is cold, between items 0 and 1
    cold = np.array([False, False, False, True])
    out = quantile_merge(warm_scores, tt, cold)
    order = np.argsort(-out[0], kind="stable").tolist()
    assert order.index(3) in (1, 2) and order.index(0) == 0 and order.index(2) == 3
