"""The service's per-item click/shown statistics (winnow.serving.item_stats) on hand-built logs."""

from __future__ import annotations

from functools import partial

import numpy as np
import pandas as pd
import pytest

from winnow.core.config import FeedbackConfig, PipelineConfig, SourceConfig
from winnow.core.errors import ConfigError
from winnow.core.ids import IdMap
from winnow.data.sqlite_store import SQLiteStore
from winnow.data.store import Store
from winnow.components import ServeContext, build_pipeline
from winnow.pipeline.types import Catalog, Request, UserView
from winnow.serving.item_stats import ItemStats


def imp(rid, user, ts, items, surface="home"):
    return {"request_id": rid, "user_id": user, "timestamp": ts, "model_version": None, "surface": surface,
            "context": {}, "items": [{"item_id": i, "position": p, "score": 0.0, "sources": [], "propensity": 0.5}
                                     for p, i in enumerate(items)]}


def events(rows):
    return pd.DataFrame({"user_id": [r[0] for r in rows], "item_id": [r[1] for r in rows],
                         "event_type": [r[2] for r in rows], "value": np.nan,
                         "timestamp": [r[3] for r in rows], "event_id": None, "context": None})


@pytest.fixture
def store(tmp_path):
    s = SQLiteStore(tmp_path / "w.db", synchronous="normal")
    yield s
    s.close()


LOG = [imp("r1", "u1", 1000, ["a", "b", "c"]), imp("r2", "u2", 1000, ["a", "b"], surface="search"),
       imp("r3", "u1", 5000, ["a"])]
EVENTS = [("u1", "a", "click", 1010),   # r1/a: clicked within the window
          ("u1", "a", "click", 1011),   # a second click on the same shown item: still one
          ("u1", "b", "click", 2000),   # 1000 s after r1: outside the 600 s window
          ("u2", "a", "view", 1001),    # not a click type
          ("u2", "b", "click", 1005),   # r2/b (search)
          ("u1", "c", "click", 999),    # before the impression: not caused by it
          ("u3", "a", "click", 1002),   # a user who was never shown a
          ("u1", "a", "click", 5001)]   # r3/a


def L(pair):
    """(clicks, shown) arrays -> lists, for comparisons."""
    return tuple(np.asarray(x).tolist() for x in pair)


def cfg(**kw):
    return FeedbackConfig(**{"click_events": ["click"], "attribution_window_s": 600, "overlap_s": 60, **kw})


def test_counts_from_a_hand_built_log(store):
    store.log_impressions(LOG)
    store.append_events(events(EVENTS))
    stats = ItemStats.from_store(store, cfg())
    assert L(stats.counts(["a", "b", "c"])) == (pytest.approx([2, 1, 0]), pytest.approx([3, 2, 1]))
    assert L(stats.counts(["a", "b", "c"], "home")) == (pytest.approx([2, 0, 0]), pytest.approx([2, 1, 1]))
    assert L(stats.counts(["a", "b"], "search")) == (pytest.approx([0, 1]), pytest.approx([1, 1]))
    assert stats.item_summary("b") == {"all": {"clicks": 1.0, "shown": 2.0},
                                       "surfaces": {"home": {"clicks": 0.0, "shown": 1.0},
                                                    "search": {"clicks": 1.0, "shown": 1.0}}}
    # unknown items and surfaces: zero counts (the prior alone)
    assert L(stats.counts(["nope"])) == ([0.0], [0.0])
    assert L(stats.counts(["a"], "never-served")) == ([0.0], [0.0])


def test_attribution_window_and_click_types_come_from_config(store):
    store.log_impressions(LOG)
    store.append_events(events(EVENTS))
    wide = ItemStats.from_store(store, cfg(attribution_window_s=1000))
    assert wide.counts(["b"], "home")[0] == pytest.approx([1])  # the 1000 s-late click now counts
    views = ItemStats.from_store(store, cfg(click_events=["click", "view"]))
    assert views.counts(["a"], "search")[0] == pytest.approx([1])  # u2's view of a counts as a click


def test_incremental_refresh_sees_other_workers_and_is_idempotent(store):
    store.log_impressions(LOG[:1])
    a = ItemStats.from_store(store, cfg())
    assert L(a.counts(["a"])) == ([0.0], [1.0])
    # another worker serves r2 and r3 and receives clicks; this one re-reads the store
    store.log_impressions(LOG[1:])
    store.append_events(events(EVENTS))
    assert a.refresh(store) == {"impressions": 2, "clicks": 3}
    assert L(a.counts(["a", "b", "c"])) == (pytest.approx([2, 1, 0]), pytest.approx([3, 2, 1]))
    assert a.refresh(store) == {"impressions": 0, "clicks": 0}  # overlap re-read counts nothing twice
    assert L(a.counts(["a", "b", "c"])) == (pytest.approx([2, 1, 0]), pytest.approx([3, 2, 1]))


def test_live_updates_then_store_echo_counted_once(store):
    stats = ItemStats.from_store(store, cfg())
    r = imp("r9", "u7", 100, ["x", "y"])
    assert stats.add_impression(r)          # served here
    click = events([("u7", "y", "click", 130), ("u7", "x", "add_to_cart", 131)])
    assert stats.add_events(click) == 1     # ingested here
    assert L(stats.counts(["x", "y"])) == ([0.0, 1.0], [1.0, 1.0])
    store.log_impressions([r])              # the writer thread stores both ...
    store.append_events(click)
    stats.refresh(store)                    # ... and the refresh reads them back
    assert L(stats.counts(["x", "y"])) == ([0.0, 1.0], [1.0, 1.0])


def test_click_before_its_impression_is_known_is_matched_by_the_refresh(store):
    stats = ItemStats.from_store(store, cfg())
    click = events([("u1", "a", "click", 1010)])
    assert stats.add_events(click) == 0  # the slate was served by another worker, not seen yet
    store.append_events(click)
    store.log_impressions(LOG[:1])
    stats.refresh(store)
    assert L(stats.counts(["a"])) == ([1.0], [1.0])


def test_old_impressions_are_forgotten_but_their_counts_stay(store):
    store.log_impressions(LOG)
    store.append_events(events(EVENTS))
    stats = ItemStats.from_store(store, cfg())
    # the newest log time is 5000/5001: r1, r2 (t=1000) are beyond window + overlap, r3 is held
    assert stats.open_impressions() == 1
    store.log_impressions([imp("late", "u9", 100_000, ["z", "zz"])])
    store.append_events(events([("u9", "q", "click", 100_000)]))
    stats.refresh(store)
    assert stats.open_impressions() == 2  # only the new slate's two items
    assert L(stats.counts(["a"])) == ([2.0], [3.0])
    # a click for a forgotten impression can no longer be attributed
    stats.add_events(events([("u1", "b", "click", 1001)]))
    assert L(stats.counts(["b"])) == ([1.0], [2.0])


def test_catalog_lookup_handles_new_items_and_new_statistics(store):
    stats = ItemStats.from_store(store, cfg())
    stats.add_impression(imp("r1", "u1", 10, ["b"]))
    stats.add_events(events([("u1", "b", "click", 11)]))
    ids = IdMap("item", ["a", "b"])
    counts = stats.bind(ids)
    assert L(counts.counts(np.array([0, 1]))) == ([0.0, 1.0], [0.0, 1.0])
    ids.add("new")  # an item created through the API: prior only
    assert L(counts.counts(np.array([2, 1]), "home")) == ([0.0, 1.0], [0.0, 1.0])
    stats.add_impression(imp("r2", "u2", 12, ["new", "a"]))  # then shown: its counts appear
    assert L(counts.counts(np.array([0, 1, 2]))) == ([0.0, 1.0, 0.0], [1.0, 1.0, 1.0])


@pytest.mark.parametrize("impl", ["sqlite", "default"])
def test_store_query_reads_click_events(store, impl):
    read = store.read_feedback_events if impl == "sqlite" else partial(Store.read_feedback_events, store)
    store.append_events(events(EVENTS))
    store.append_events(events([("u5", "a", "click", 3000), ("u5", "b", "purchase", 3001)]))
    got = read(event_types=["click", "purchase"], since=1005)
    assert list(got.columns) == ["user_id", "item_id", "event_type", "timestamp"]
    assert got.values.tolist() == [["u2", "b", "click", 1005], ["u1", "a", "click", 1010],
                                   ["u1", "a", "click", 1011], ["u1", "b", "click", 2000],
                                   ["u5", "a", "click", 3000], ["u5", "b", "purchase", 3001],
                                   ["u1", "a", "click", 5001]]
    assert len(read(event_types=["click"])) == 8
    assert len(read(event_types=["rating"])) == 0  # a type never stored
    assert len(read(event_types=["click"], since=6000)) == 0
    store.delete_user("u1")  # erased users' events are gone from this read too
    assert "u1" not in set(read(event_types=["click"])["user_id"])


def _pipeline(explore, item_stats):
    n = 12
    cat = Catalog(IdMap("item", [f"i{i}" for i in range(n)]), category=np.zeros(n, np.int32),
                  category_names=["a"], available=np.ones(n, bool), sponsored=np.zeros(n, bool),
                  created_at=np.full(n, -1, np.int64), popularity=np.arange(n, 0, -1).astype(np.float32),
                  trending=np.arange(n, 0, -1).astype(np.float32))
    pcfg = PipelineConfig(sources=[SourceConfig(name="popularity", kind="popularity", quota=n)],
                          cold_start_sources=["popularity"], backfill_source="popularity", min_candidates=5,
                          max_candidates=n, rules=["exclude"], explore=explore)
    return build_pipeline(pcfg, ServeContext(cat), item_stats=item_stats)


def test_thompson_in_the_pipeline_follows_the_live_statistics(store):
    spec = {"home": {"kind": "thompson", "pool": 10, "n_mc": 300, "prior_misses": 5.0}}
    with pytest.raises(ConfigError, match="pipeline.explore.home.*thompson"):
        _pipeline(spec, None)
    stats = ItemStats(cfg())
    pipe = _pipeline(spec, stats)

    def first_items(tag):
        return [pipe.recommend(Request(UserView("u"), 3, 0, surface="home", request_id=f"{tag}{i}")).items[0].item
                for i in range(200)]

    before = first_items("a")
    # item i9 (rank 9 of 10) gets clicked every time it is shown on "home"; the others never
    for j in range(30):
        stats.add_impression(imp(f"s{j}", "u", 50, [f"i{i}" for i in range(10)]))
        stats.add_events(events([("u", "i9", "click", 50)]))
        stats.add_impression(imp(f"t{j}", "u", 50, [f"i{i}" for i in range(10)]))  # i9 shown, not clicked
    slate = pipe.recommend(Request(UserView("u"), 3, 0, surface="home", request_id="x"))
    assert slate.policy == "thompson" and all(0 < s.propensity <= 1 for s in slate.items)
    again = pipe.recommend(Request(UserView("u"), 3, 0, surface="home", request_id="x"))
    assert [(s.item, s.propensity) for s in again.items] == [(s.item, s.propensity) for s in slate.items]
    after = first_items("b")
    assert after.count(9) > 150 and before.count(9) < 60
    # per surface: "other" (served by a default thompson spec) has no data for i9
    pipe2 = _pipeline({"default": {"kind": "thompson", "pool": 10, "n_mc": 50}}, stats)
    other = [pipe2.recommend(Request(UserView("u"), 3, 0, surface="other", request_id=f"c{i}")).items[0].item
             for i in range(200)]
    assert other.count(9) < 60
    pooled = _pipeline({"default": {"kind": "thompson", "pool": 10, "n_mc": 50, "per_surface": False}}, stats)
    assert [pooled.recommend(Request(UserView("u"), 3, 0, surface="other", request_id=f"c{i}")).items[0].item
            for i in range(200)].count(9) > 150


def test_rebuild_from_a_long_log_walks_in_time_order(store):
    # 12,000 slates, one a second (three refresh batches); every third user clicks "a" 5 s later
    n = 12_000
    store.log_impressions([imp(f"r{i}", f"u{i}", i, ["a", f"x{i % 50}"]) for i in range(n)])
    store.append_events(events([(f"u{i}", "a", "click", i + 5) for i in range(0, n, 3)]))
    stats = ItemStats.from_store(store, cfg())
    assert L(stats.counts(["a", "x0"])) == ([n / 3, 0.0], [float(n), n / 50])
    # only slates within window + overlap (660 s) of the newest log time are still held
    assert stats.open_impressions() == 2 * len(range(n - 1 - 660, n))


def test_forget_user_drops_open_impressions_only(store):
    stats = ItemStats(cfg())
    stats.add_impression(imp("r1", "u1", 10, ["a", "b"]))
    stats.add_impression(imp("r2", "u2", 10, ["a"]))
    assert stats.forget_user("u1") == 2 and stats.open_impressions() == 1
    assert stats.add_events(events([("u1", "a", "click", 11)])) == 0  # nothing left to attribute to
    assert L(stats.counts(["a"])) == ([0.0], [2.0])


def test_decay_halves_counts_per_half_life_of_log_time(store):
    stats = ItemStats(cfg(half_life_s=1000.0))
    stats.add_impression(imp("r1", "u1", 1000, ["a"]))
    stats.add_events(events([("u1", "a", "click", 1010)]))
    assert L(stats.counts(["a"])) == ([pytest.approx(1.0)], [pytest.approx(1.0)])
    stats.add_impression(imp("r2", "u2", 2000, ["b"]))  # log time moves on one half-life
    assert L(stats.counts(["a", "b"])) == ([pytest.approx(0.5), 0.0], [pytest.approx(0.5), pytest.approx(1.0)])
    # a click arriving after the clock moved weighs what its showing weighs (clicks <= shown)
    stats.add_events(events([("u2", "b", "click", 2100)]))
    stats.add_impression(imp("r3", "u3", 4000, ["c"]))
    clicks, shown = stats.counts(["a", "b", "c"])
    np.testing.assert_allclose(clicks, [0.125, 0.25, 0.0])
    np.testing.assert_allclose(shown, [0.125, 0.25, 1.0])
    assert stats.item_summary("b")["all"] == {"clicks": pytest.approx(0.25), "shown": pytest.approx(0.25)}
    assert stats.item_summary("b")["surfaces"]["home"]["shown"] == pytest.approx(0.25)


def test_decayed_counts_are_the_same_live_and_rebuilt_from_the_store(store):
    rng = np.random.default_rng(3)
    log = [imp(f"r{i}", f"u{i % 7}", 10 * i, [f"i{j}" for j in rng.choice(6, 3, replace=False)],
               surface=["home", "search"][i % 2]) for i in range(400)]
    clicks = [(im["user_id"], it["item_id"], "click", im["timestamp"] + 3)
              for im in log for it in im["items"] if rng.random() < 0.3]
    store.log_impressions(log)
    store.append_events(events(clicks))
    live = ItemStats(cfg(half_life_s=50.0))  # 80 half-lives over the log: the origin moves
    for im in log:
        live.add_impression(im)
        live.add_events(events([c for c in clicks if c[3] == im["timestamp"] + 3 and c[0] == im["user_id"]]))
    rebuilt = ItemStats.from_store(store, cfg(half_life_s=50.0))
    items = [f"i{j}" for j in range(6)]
    for surface in (None, "home", "search"):
        a, b = live.counts(items, surface), rebuilt.counts(items, surface)
        np.testing.assert_allclose(a[0], b[0], rtol=1e-9)
        np.testing.assert_allclose(a[1], b[1], rtol=1e-9)
        assert np.all(np.isfinite(a[1])) and np.all(a[0] <= a[1] + 1e-12)
    # the newest slates dominate: the counts sum to about one half-life's worth of showings
    total_shown = live.counts(items)[1].sum()
    assert 3 * 5 / np.log(2) * 0.9 < total_shown < 3 * 5 / np.log(2) * 1.1 + 3


def test_thompson_with_decay_follows_a_drop_in_click_through(store):
    """Item i1 was clicked every time long ago and never lately: with decay its posterior mean
    falls to the recent rate; without decay the old clicks keep it high."""
    def run(half_life):
        stats = ItemStats(cfg(half_life_s=half_life))
        for j in range(100):  # old era: i1 always clicked
            stats.add_impression(imp(f"o{j}", "u", j, ["i1"]))
            stats.add_events(events([("u", "i1", "click", j)]))
        for j in range(100):  # recent era, 20 half-lives later: never clicked
            stats.add_impression(imp(f"n{j}", "v", 20_000 + j, ["i1"]))
        c, s = stats.counts(["i1"])
        return float((c[0] + 1.0) / (s[0] + 21.0))  # Beta(1, 20) prior mean
    assert run(0.0) > 0.4
    assert run(1000.0) < 0.02


def test_half_life_must_not_be_negative():
    with pytest.raises(ValueError, match="half_life_s"):
        FeedbackConfig(half_life_s=-1.0)
