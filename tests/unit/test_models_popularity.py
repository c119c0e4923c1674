"""Popularity baselines: all-time counts, recent window, half-life decay."""

from __future__ import annotations

import numpy as np
import pytest

from winnow.core.config import PopularityConfig
from winnow.data.interactions import Interactions
from winnow.models.popularity import PopularityRecommender, RecentPopularityRecommender

DAY = 86_400
NOW = 1_700_000_000


def _world() -> Interactions:
    # item 0: 5 old events (100 days ago); item 1: 3 events yesterday; item 2: 2 events today;
    # item 3: one event with weight 0 (a skip) today; item 4 never seen
    items = [0] * 5 + [1] * 3 + [2] * 2 + [3]
    ts = [NOW - 100 * DAY] * 5 + [NOW - DAY] * 3 + [NOW] * 2 + [NOW]
    weight = [1.0] * 10 + [0.0]
    return Interactions.from_arrays(np.arange(11), np.array(items), weight=np.array(weight),
                                    timestamp=np.array(ts), n_items=5)


def test_all_time_counts_positive_events() -> None:
    m = PopularityRecommender().fit(_world())
    np.testing.assert_array_equal(m.item_scores_, [5, 3, 2, 0, 0])
    items, scores = m.ranking(3)
    assert items.tolist() == [0, 1, 2]
    rec, _ = m.recommend(np.array([0, 7]), 2)
    assert rec.tolist() == [[0, 1], [0, 1]]  # same ranking for everyone


def test_window_is_relative_to_latest_training_event() -> None:
    m = RecentPopularityRecommender(window_days=30).fit(_world())
    np.testing.assert_array_equal(m.item_scores_, [0, 3, 2, 0, 0])
    assert m.ranking(2)[0].tolist() == [1, 2]


def test_half_life_decay() -> None:
    m = RecentPopularityRecommender(window_days=None, half_life_days=1.0).fit(_world())
    np.testing.assert_allclose(m.item_scores_, [5 * 0.5**100, 1.5, 2.0, 0, 0], rtol=1e-5)
    assert m.ranking(2)[0].tolist() == [2, 1]  # two events today beat three yesterday


def test_recent_needs_a_window_or_half_life() -> None:
    with pytest.raises(ValueError, match="window_days or half_life_days"):
        RecentPopularityRecommender(window_days=None, half_life_days=None)
    with pytest.raises(ValueError, match="window_days must be > 0"):
        RecentPopularityRecommender(window_days=-1)
    m = RecentPopularityRecommender.from_config(PopularityConfig())
    assert m.get_params() == {"window_days": 30.0, "half_life_days": None}
    m = RecentPopularityRecommender.from_config(PopularityConfig(window_days=7, half_life_days=2))
    assert m.get_params() == {"window_days": 7, "half_life_days": 2}
