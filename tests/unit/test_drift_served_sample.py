"""The drift monitor's served-slate reads take a user sample once a window is large
([drift] served_max_events, served_max_impressions): the same sample in every read, sized by the
window's events or by its logged slates, whichever asks for the smaller sample, and a profile
whose shares are those of the sampled users (winnow.evaluation.drift_served)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from winnow.core.config import load_config
from winnow.data.sqlite_store import SQLiteStore
from winnow.data.user_sample import BUCKETS, in_sample
from winnow.evaluation.drift_served import sample_for, served_profile, served_sample


class _Recording(SQLiteStore):
    """A store that records the ``user_sample`` each served-slate read was given."""

    seen: list[tuple[str, int | None]]

    def read_shown_items(self, **kw):  # type: ignore[no-untyped-def]
        self.seen.append(("shown", kw.get("user_sample")))
        return super().read_shown_items(**kw)

    def read_source_scores(self, **kw):  # type: ignore[no-untyped-def]
        self.seen.append(("sources", kw.get("user_sample")))
        return super().read_source_scores(**kw)

    def read_candidate_sets(self, **kw):  # type: ignore[no-untyped-def]
        self.seen.append(("candidates", kw.get("user_sample")))
        return super().read_candidate_sets(**kw)

    def read_feedback_events(self, **kw):  # type: ignore[no-untyped-def]
        self.seen.append(("positives", kw.get("user_sample")))
        return super().read_feedback_events(**kw)


def test_sample_for_sizes_the_sample_by_the_window() -> None:
    assert sample_for(0, 100) is None and sample_for(100, 100) is None
    assert sample_for(200, 100) == BUCKETS // 2
    assert sample_for(300, 100) == -(-BUCKETS // 3)  # rounded up: at least max_events' worth
    assert sample_for(10**12, 100) == 1


def test_served_sample_takes_the_smaller_of_the_events_and_the_slates_samples(tmp_path: Path) -> None:
    cfg = load_config(tmp_path, environ={}, overrides={
        "drift": {"served_max_events": 100, "served_max_impressions": 1000}}).drift
    assert served_sample(100, 1000, cfg) is None  # neither over its cap: everyone
    assert served_sample(400, 1000, cfg) == BUCKETS // 4  # the events' sample
    assert served_sample(0, 8000, cfg) == BUCKETS // 8  # no event, many slates: the slates' sample
    assert served_sample(200, 8000, cfg) == BUCKETS // 8 and served_sample(800, 2000, cfg) == BUCKETS // 8


def _store(tmp_path: Path) -> _Recording:
    store = _Recording(tmp_path / "w.db")
    store.seen = []
    rng = np.random.default_rng(0)
    users = [f"u{k}" for k in range(200)]
    imps, events = [], []
    for k in range(2000):
        u = users[int(rng.integers(0, 200))]
        shown = [f"i{int(i)}" for i in rng.integers(0, 50, 5)]
        imps.append({"request_id": f"r{k}", "user_id": u, "timestamp": 10_000 + k, "model_version": "v",
                     "context": {}, "items": [{"item_id": it, "position": p, "score": 1.0 / (p + 1)}
                                              for p, it in enumerate(shown)]})
        if rng.random() < 0.5:  # a click on a shown item (a hit) or on another (a miss)
            item = shown[0] if rng.random() < 0.6 else f"i{int(rng.integers(50, 80))}"
            events.append((u, item, 10_000 + k + 5))
    store.log_impressions(imps)
    store.append_events(pd.DataFrame({"user_id": [e[0] for e in events], "item_id": [e[1] for e in events],
                                      "event_type": "click", "value": np.nan, "timestamp": [e[2] for e in events]}))
    return store


def test_a_window_of_many_slates_and_few_events_is_sampled_by_its_slates(tmp_path: Path) -> None:
    """What a server that answered many requests and was sent few events holds (an old benchmark
    home: 0 events and 4 x 10^5 slates in the window): its served reads are sampled too, sized by
    the slates logged in the window, so the comparison stops growing with the requests served."""
    store = _store(tmp_path)
    try:
        few = load_config(tmp_path, environ={}, overrides={"drift": {"served_max_impressions": 500}})
        part = served_profile(store, few, since=10_000, until=13_000, events=0)
        keep = sample_for(2000, 500)  # the window's 2000 slates, 4x the cap: ~1/4 of the users
        assert {k for _, k in store.seen} == {keep} and {r for r, _ in store.seen} == {
            "shown", "sources", "candidates", "positives"}
        assert part["served_sample"] == keep / BUCKETS
        store.seen = []
        served_profile(store, few, since=13_000, until=14_000, events=0)  # no slate in [12_400, 14_000)
        assert {k for _, k in store.seen} == {None}
    finally:
        store.close()


def test_a_large_window_reads_one_user_sample_everywhere_and_estimates_the_whole(tmp_path: Path) -> None:
    store = _store(tmp_path)
    try:
        small = load_config(tmp_path, environ={}, overrides={"drift": {"served_max_events": 10}})
        full = served_profile(store, load_config(tmp_path, environ={}), since=10_000, until=13_000, events=1000)
        assert full["served_sample"] == 1.0 and {k for _, k in store.seen} == {None}
        store.seen = []
        part = served_profile(store, small, since=10_000, until=13_000, events=40)  # 4x the cap: ~1/4 of users
        keep = sample_for(40, 10)
        assert {k for _, k in store.seen} == {keep} and {r for r, _ in store.seen} == {
            "shown", "sources", "candidates", "positives"}
        assert part["served_sample"] == keep / BUCKETS
        # the estimate of the shown items and the hit share of the sampled users
        shown = store.read_shown_items(since=10_000, until=13_000)
        mine = shown[in_sample(shown["user_id"].tolist(), keep)]
        assert part["served_items"] == round(len(mine) / (keep / BUCKETS))
        assert abs(part["served_items"] - full["served_items"]) < 0.35 * full["served_items"]
        assert 0 < part["served_hit_share"] < 1 and abs(part["served_hit_share"] - full["served_hit_share"]) < 0.2
    finally:
        store.close()
