"""Sources, merging, fallback chain, ranking and explain traces of the Pipeline, on small fakes."""

from __future__ import annotations

import numpy as np
import pytest

from winnow.core.config import PipelineConfig, SourceConfig
from winnow.core.errors import ConfigError
from winnow.core.ids import IdMap
from winnow.components import ServeContext, build_pipeline
from winnow.pipeline.pipeline import Pipeline
from winnow.pipeline.rank import BlendRanker, candidate_features
from winnow.pipeline.sources import AlsSource, ItemItemSource, RankedArraySource
from winnow.pipeline.types import Catalog, Ranker, Request, UserView

N = 40
NOW = 2_000_000_000


def make_catalog() -> Catalog:
    created = np.full(N, -1, np.int64)
    created[30:] = NOW - np.arange(10) * 86400  # items 30.. are new, 30 the newest
    return Catalog(IdMap("item", [f"i{i}" for i in range(N)]), category=(np.arange(N) % 4).astype(np.int32),
                   category_names=["a", "b", "c", "d"], available=np.ones(N, bool), sponsored=np.zeros(N, bool),
                   created_at=created, popularity=np.arange(N, 0, -1).astype(np.float32),
                   trending=np.roll(np.arange(N, 0, -1), 5).astype(np.float32))


class FakeIndex:
    """Exact inner-product search over fixed vectors (the oracle the real index is tested against)."""

    def __init__(self, vectors: np.ndarray) -> None:
        self.v = vectors

    def search(self, queries, k, **_):
        s = queries @ self.v.T
        idx = np.argsort(-s, axis=1)[:, :k]
        return idx.astype(np.int64), np.take_along_axis(s, idx, 1).astype(np.float32)


def fake_itemitem(hist, weights, k):
    """Neighbours of item i are i+1 and i+2 (co-occurrence stand-in)."""
    scores: dict[int, float] = {}
    for h, w in zip(hist.tolist(), weights.tolist(), strict=True):
        for d in (1, 2):
            j = (h + d) % N
            scores[j] = scores.get(j, 0.0) + w / d
    items = sorted(scores, key=lambda j: -scores[j])[:k]
    return np.array(items, np.int32), np.array([scores[j] for j in items], np.float32)


def config(**kw) -> PipelineConfig:
    base = dict(sources=[SourceConfig(name="als", kind="als", quota=10, weight=1.0),
                         SourceConfig(name="ii", kind="itemitem", quota=10, weight=1.0),
                         SourceConfig(name="trending", kind="trending", quota=5, weight=0.2),
                         SourceConfig(name="fresh", kind="fresh", quota=5, weight=0.2)],
                cold_start_sources=["trending", "fresh"], backfill_source="popularity",
                min_candidates=15, max_candidates=30, rules=["exclude", "filter", "diversity"],
                max_consecutive_per_category=1)
    base.update(kw)
    return PipelineConfig(**base)


@pytest.fixture
def setup():
    rng = np.random.default_rng(0)
    vecs = rng.normal(size=(N, 4)).astype(np.float32)
    cat = make_catalog()
    art = ServeContext(cat, artefacts={"als": FakeIndex(vecs), "itemitem": fake_itemitem})
    return cat, vecs, art


def known_user(vecs, **kw) -> UserView:
    return UserView("u", known=True, als_vector=vecs[3], recent_items=np.array([10, 20], np.int32),
                    recent_weights=np.array([1.0, 1.0], np.float32), **kw)


def test_als_source_returns_index_neighbours(setup):
    cat, vecs, art = setup
    items, scores = AlsSource("als", art.artefacts["als"]).candidates(Request(known_user(vecs), 5, NOW), 5)
    exact = np.argsort(-(vecs @ vecs[3]))[:5]
    assert list(items) == list(exact) and np.all(np.diff(scores) <= 0)
    assert len(AlsSource("als", art.artefacts["als"]).candidates(Request(UserView("x"), 5, NOW), 5)[0]) == 0


def test_itemitem_source_uses_recent_history(setup):
    _, vecs, art = setup
    items, _ = ItemItemSource("ii", fake_itemitem).candidates(Request(known_user(vecs), 5, NOW), 4)
    assert set(items.tolist()) == {11, 12, 21, 22}


def test_ranked_array_sources_skip_unavailable_and_unknown(setup):
    cat, _, _ = setup
    pop = RankedArraySource("p", "popularity", cat, lambda c: c.popularity)
    cat.available[0] = False
    items, _ = pop.candidates(Request(UserView("u"), 3, NOW), 3)
    assert list(items) == [1, 2, 3]
    fresh = RankedArraySource("f", "fresh", cat, lambda c: np.where(c.created_at >= 0, c.created_at, -np.inf))
    items, _ = fresh.candidates(Request(UserView("u"), 20, NOW), 20)
    assert list(items) == list(range(30, 40))  # only items with a creation time, newest first


def test_ranked_array_source_widens_past_a_mostly_unavailable_head(setup):
    """The source reads a short prefix first; when most of the top items are unavailable it
    must still return the first k available ones of the whole order, in order."""
    cat, _, _ = setup
    pop = RankedArraySource("p", "popularity", cat, lambda c: c.popularity)
    for unavailable in ([], list(range(0, 12, 2)), list(range(9)), list(range(N - 2))):
        cat.available[:] = True
        cat.available[unavailable] = False
        for k in (1, 3, 5, 40):
            items, scores = pop.candidates(Request(UserView("u"), k, NOW), k)
            expected = [i for i in range(N) if cat.available[i]][:k]  # popularity falls with the index
            assert list(items) == expected, (unavailable, k)
            assert list(scores) == [float(cat.popularity[i]) for i in expected]


def test_known_user_merges_sources_without_duplicates(setup):
    cat, vecs, art = setup
    pipe = build_pipeline(config(), art)
    cands = pipe.retrieve(Request(known_user(vecs), 5, NOW))
    assert len(set(cands.items.tolist())) == len(cands) <= 30
    assert "cold_start" not in cands.fallbacks
    for name, ranks in cands.source_ranks.items():
        assert (ranks >= 0).sum() > 0, name


def test_unknown_user_uses_cold_start_then_backfill(setup):
    cat, _, art = setup
    pipe = build_pipeline(config(), art)
    slate = pipe.recommend(Request(UserView("new"), 5, NOW))
    assert slate.fallbacks == ["cold_start", "backfill"]
    assert len(slate.items) == 5
    assert all(set(s.sources) <= {"trending", "fresh", "popularity"} for s in slate.items)


def test_enough_candidates_needs_no_backfill(setup):
    _, vecs, art = setup
    pipe = build_pipeline(config(min_candidates=5), art)
    assert pipe.recommend(Request(known_user(vecs), 5, NOW)).fallbacks == []


def test_everything_excluded_still_fills_slate_and_says_so(setup):
    cat, vecs, art = setup
    pipe = build_pipeline(config(), art)
    user = known_user(vecs, purchased=np.array([0], np.int32))  # 0 and 1 top the popularity list
    slate = pipe.recommend(Request(user, 5, NOW, categories=frozenset({99}), exclude=np.array([1], np.int32)))
    assert len(slate.items) == 5 and "empty" in slate.fallbacks
    assert {0, 1}.isdisjoint(s.item for s in slate.items)


def test_unknown_source_name_fails_at_construction(setup):
    _, _, art = setup
    with pytest.raises(ConfigError, match="nope"):
        build_pipeline(config(cold_start_sources=["nope"]), art)
    with pytest.raises(ConfigError, match="duplicate"):
        build_pipeline(config(sources=[SourceConfig(name="x", kind="trending"),
                                       SourceConfig(name="x", kind="fresh")]), art)
    with pytest.raises(ConfigError, match="als"):
        build_pipeline(config(), ServeContext(art.catalog, artefacts={"itemitem": fake_itemitem}))


def test_blend_is_rank_normalised_and_rewards_agreement():
    from winnow.pipeline.types import Candidates
    cands = Candidates(np.array([0, 1, 2], np.int32),
                       {"als": np.array([9.0, 5.0, np.nan], np.float32),
                        "ii": np.array([3.0, np.nan, 7.0], np.float32)},
                       {"als": np.array([0, 1, -1], np.int32), "ii": np.array([1, -1, 0], np.int32)},
                       {"als": 10, "ii": 10})
    req = Request(UserView("u", category_affinity={1: 1.0}), 3, NOW)
    feats = candidate_features(cands, req, make_catalog())
    assert feats["rank_als"].tolist() == pytest.approx([1.0, 0.9, 0.0])
    assert feats["rank_ii"].tolist() == pytest.approx([0.9, 0.0, 1.0])
    scores = BlendRanker({"als": 1.0, "ii": 1.0}, affinity_weight=0.0).score(cands, feats)
    assert scores.tolist() == pytest.approx([0.95, 0.45, 0.5])  # raw score units do not matter
    with_aff = BlendRanker({"als": 1.0, "ii": 1.0}, affinity_weight=1.0).score(cands, feats)
    assert with_aff.tolist() == pytest.approx([0.95, 1.45, 0.5])  # item 1 is in category 1


def test_category_affinity_moves_category_up(setup):
    cat, vecs, art = setup
    pipe = build_pipeline(config(), art)
    req = Request(known_user(vecs, category_affinity={2: 1.0}), 5, NOW)
    slate = Pipeline(config(rules=["exclude"]), pipe.sources, cat,
                     ranker=BlendRanker({"als": 1.0, "ii": 1.0}, affinity_weight=5.0), rules=[]).recommend(req)
    assert all(cat.category[s.item] == 2 for s in slate.items[:3])


def test_explain_trace_lists_sources_rank_and_rules(setup):
    cat, vecs, art = setup
    pipe = build_pipeline(config(), art)
    slate = pipe.recommend(Request(known_user(vecs), 6, NOW, explain=True))
    for s in slate.items:
        assert set(s.trace["sources"]) == set(s.sources)
        assert s.trace["rank_position"] is not None
    cats = [int(cat.category[s.item]) for s in slate.items]
    assert all(a != b for a, b in zip(cats, cats[1:], strict=False))  # max 1 consecutive per category
    assert set(slate.timings) == {"retrieve", "rank", "rerank", "total"}


def test_sparse_history_scorer_matches_item_item_model():
    from winnow.data.interactions import Interactions
    from winnow.models.itemitem import ItemItemRecommender
    from winnow.pipeline.sources import sparse_history_scorer

    rng = np.random.default_rng(3)
    inter = Interactions.from_arrays(rng.integers(0, 60, 800), rng.integers(0, 50, 800), n_users=60, n_items=50)
    model = ItemItemRecommender(neighbours=10, shrinkage=10.0).fit(inter)
    fast = sparse_history_scorer(model.similarity_)
    for hist in ([1, 2, 3], [7], [4, 4, 9, 30]):
        h = np.array(hist)
        w = rng.random(len(h)).astype(np.float32)
        ref_i, ref_s = model.score_from_history(h, w, 15)
        got_i, got_s = fast(h, w, 15)
        ok = ref_i >= 0
        assert got_s.tolist() == pytest.approx(ref_s[ok].tolist(), rel=1e-5)
        assert set(got_i.tolist()) == set(ref_i[ok].tolist())


class _OwnFeatures(Ranker):
    """Scores known users itself (reverse retrieval order); None for the rest."""

    own_features = True
    explains = True

    def __init__(self) -> None:
        self.asked: list[str] = []

    def score_request(self, candidates, request):
        self.asked.append("score_request")
        if not request.user.known:
            return None
        return np.arange(len(candidates), dtype=np.float32)

    def explain(self, candidates, request, rows):
        self.asked.append("explain")
        return {int(r): [{"feature": "toy", "contribution": 1.0}] for r in rows}


class _ExplainsUndeclared(BlendRanker):
    def explain(self, candidates, request, rows):  # not declared (explains = False): never called
        raise AssertionError("the pipeline probed an undeclared capability")


def test_ranker_capabilities_are_declared_not_probed(setup):
    cat, vecs, art = setup
    pipe = build_pipeline(config(), art)
    own = _OwnFeatures()
    learned = Pipeline(config(), pipe.sources, cat, ranker=own, rules=[])
    cands = learned.retrieve(Request(known_user(vecs), 5, NOW))
    ranked = learned.rank(cands, Request(known_user(vecs), 5, NOW))
    assert ranked.row.tolist() == list(range(len(cands)))[::-1]  # its own scores: last row first
    cold = Request(UserView("cold", known=False, als_vector=vecs[3]), 5, NOW)
    cold_cands = learned.retrieve(cold)
    blend = learned.blend.score(cold_cands, candidate_features(cold_cands, cold, cat))
    assert learned.rank(cold_cands, cold).scores.tolist() == pytest.approx(sorted(blend.tolist(), reverse=True))
    slate = learned.recommend(Request(known_user(vecs), 3, NOW, explain=True))
    assert all(s.trace["rank_features"] == [{"feature": "toy", "contribution": 1.0}] for s in slate.items)
    assert "explain" in own.asked
    undeclared = Pipeline(config(), pipe.sources, cat, ranker=_ExplainsUndeclared({"als": 1.0}), rules=[])
    slate = undeclared.recommend(Request(known_user(vecs), 3, NOW, explain=True))
    assert all("rank_features" not in s.trace and s.trace["sources"] for s in slate.items)
    with pytest.raises(NotImplementedError, match="score_request"):
        own.score(cands, {})


def test_set_quota_changes_a_sources_share_and_refuses_unknown_sources(setup):
    cat, vecs, art = setup
    pipe = build_pipeline(config(), art)
    before = pipe.retrieve(Request(known_user(vecs), 5, NOW))
    pipe.set_quota("als", 2)
    after = pipe.retrieve(Request(known_user(vecs), 5, NOW))
    assert after.source_quota["als"] == 2
    assert (after.source_ranks["als"] >= 0).sum() <= 2 < (before.source_ranks["als"] >= 0).sum()
    with pytest.raises(ConfigError, match="no source named 'nope'"):
        pipe.set_quota("nope", 3)
    with pytest.raises(ConfigError, match="quota must be >= 1"):
        pipe.set_quota("als", 0)


def test_pause_is_called_between_the_stages_and_left_out_of_their_timings(setup, monkeypatch):
    """``recommend(pause=)``: called after retrieve and after rank (the shadow gives way to live
    requests there); the slate is the one without pauses, and the time paused is in no stage.
    Each pause moves the pipeline's clock on by 100 s (no sleep): a stage or total that counted
    a pause would be over 100 s."""
    from winnow.pipeline import pipeline as pipeline_module

    _, vecs, art = setup
    pipe = build_pipeline(config(), art)
    calls: list[str] = []
    stages = {"retrieve": pipe.retrieve, "rank": pipe.rank}

    def counted(name: str):
        def run(*a, **kw):
            calls.append(name)
            return stages[name](*a, **kw)
        return run

    pipe.retrieve, pipe.rank = counted("retrieve"), counted("rank")  # type: ignore[method-assign]
    real = pipeline_module.time.perf_counter
    offset = [0.0]

    class Clock:  # the pipeline module's ``time``: perf_counter plus the paused seconds
        @staticmethod
        def perf_counter() -> float:
            return real() + offset[0]

    def pause() -> None:
        calls.append("pause")
        offset[0] += 100.0

    plain = pipe.recommend(Request(known_user(vecs), 5, NOW))
    calls.clear()
    monkeypatch.setattr(pipeline_module, "time", Clock)
    paused = pipe.recommend(Request(known_user(vecs), 5, NOW), pause=pause)
    assert calls == ["retrieve", "pause", "rank", "pause"] and offset[0] == 200.0
    assert [(s.item, s.score) for s in paused.items] == [(s.item, s.score) for s in plain.items]
    assert paused.timings["total"] < 100.0, paused.timings  # neither pause counted
    assert all(0 <= paused.timings[s] < 100.0 for s in ("retrieve", "rank", "rerank"))
    assert paused.timings["total"] >= paused.timings["retrieve"] + paused.timings["rank"] + paused.timings["rerank"]
