"""The training paths that make `winnow train` scale (issue 20): sparse candidate proposals,
capped ranker lists, dropping lists without a positive before their features, reuse of the
bundle's fitted models, and the per-stage clock. Each optimisation is checked against the
computation it replaces on a world small enough to do both."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from winnow.core.config import load_config
from winnow.data.interactions import Interactions
from winnow.data.synthetic import generate_world
from winnow.data.training_data import dataset_from_frames
from winnow.evaluation.splits import validation_split
from winnow.features import FeatureCatalog, Lists, fit_spec, offline_features
from winnow.models.itemitem import ItemItemRecommender
from winnow.models.popularity import PopularityRecommender, RecentPopularityRecommender
from winnow.models.sequence import SequenceRecommender
from winnow.pipeline.sources import sparse_history_scorer
from winnow.training.stacked import StackedRanker, cap_lists, fit_sources, served_ranker_config
from winnow.training.progress import StageClock, rss_bytes
from winnow.training.ranker_data import generate_candidates, label_lists, list_times
from winnow.training.served_ranker import fit_served_ranker

N_U, N_I = 200, 300


def _world(seed: int = 1, weights: bool = False) -> Interactions:
    rng = np.random.default_rng(seed)
    n = 5000
    u = rng.integers(0, N_U, n)
    i = rng.zipf(1.4, n) % N_I
    w = rng.random(n) + 0.1 if weights else np.ones(n)
    return Interactions.from_arrays(u, i, weight=w, timestamp=np.arange(n) + 1_700_000_000,
                                    n_users=N_U, n_items=N_I)


def test_propose_equals_the_serving_scorer() -> None:
    """Integer co-occurrence counts and unit weights make every sum exact, so the sparse
    proposal must equal, item for item, what the serving ItemItemSource scorer returns for the
    user's whole training history (positive scores only, ties by lower item index)."""
    world = _world()
    model = ItemItemRecommender(neighbours=12, shrinkage=0.0, normalize="none").fit(world)
    users = np.arange(N_U)
    items, scores = model.propose(users, 40, exclude=world.to_csr(binary=True))
    score = sparse_history_scorer(model.similarity_)
    compared = 0
    for u in users:
        hist = model.user_items_[u]
        want_i, want_s = score(hist.indices, hist.data, 40)
        n = int((items[u] >= 0).sum())
        np.testing.assert_array_equal(items[u, :n], want_i)
        np.testing.assert_array_equal(scores[u, :n], want_s)
        assert (items[u, n:] == -1).all() and np.isneginf(scores[u, n:]).all()
        compared += n
    assert compared > N_U * 10  # the world gives most users many proposals


@pytest.mark.parametrize("model", [ItemItemRecommender(neighbours=15, shrinkage=5.0),
                                   SequenceRecommender(window=5, neighbours=15)])
def test_propose_matches_the_dense_path_on_positive_scores(model) -> None:
    """Weighted histories: the k best positive scores of the dense ``recommend`` (which the
    proposal replaces) and of ``propose`` are the same multiset per user; ties may order apart."""
    world = _world(weights=True)
    model.fit(world)
    ex = world.to_csr(binary=True)
    p_items, p_scores = model.propose(np.arange(N_U), 30, exclude=ex)
    d_items, d_scores = model.recommend(np.arange(N_U), 30, exclude=ex)
    for u in range(N_U):
        pos = d_scores[u][d_scores[u] > 0]
        n = int((p_items[u] >= 0).sum())
        assert n == len(pos)
        np.testing.assert_allclose(np.sort(p_scores[u, :n]), np.sort(pos), rtol=1e-5)
        assert not set(p_items[u, :n].tolist()) & set(ex[u].indices.tolist())


def test_propose_honours_candidates_and_blocks_of_one_user(monkeypatch) -> None:
    import winnow.models.item_similarity as item_similarity

    world = _world()
    model = ItemItemRecommender(neighbours=12, shrinkage=10.0).fit(world)
    ex = world.to_csr(binary=True)
    allowed = np.arange(0, N_I, 3)
    whole = model.propose(np.arange(N_U), 10, exclude=ex, candidates=allowed)
    assert np.isin(whole[0][whole[0] >= 0], allowed).all()
    monkeypatch.setattr(item_similarity, "PROPOSE_BLOCK_NNZ", 1)  # one user per block
    blocked = model.propose(np.arange(N_U), 10, exclude=ex, candidates=allowed)
    np.testing.assert_array_equal(whole[0], blocked[0])
    np.testing.assert_array_equal(whole[1], blocked[1])
    with pytest.raises(ValueError, match="out of range"):
        model.propose(np.array([N_U]), 3)


@pytest.mark.parametrize("cls", [PopularityRecommender, RecentPopularityRecommender])
def test_popularity_propose_walks_the_global_ranking_past_exclusions(cls) -> None:
    world = _world()
    model = cls().fit(world)
    ex = world.to_csr(binary=True)
    items, scores = model.propose(np.arange(N_U), 25, exclude=ex)
    _, dense_scores = model.recommend(np.arange(N_U), 25, exclude=ex)
    order = np.argsort(-model.item_scores_, kind="stable")
    order = order[model.item_scores_[order] > 0]
    for u in range(N_U):
        seen = set(ex[u].indices.tolist())
        want = [i for i in order.tolist() if i not in seen][:25]
        n = int((items[u] >= 0).sum())
        assert items[u, :n].tolist() == want
        np.testing.assert_array_equal(scores[u, :n], dense_scores[u, :n])


def test_cap_lists_is_a_seeded_uniform_subset() -> None:
    assert cap_lists(10, 10, 0) is None
    a = cap_lists(1000, 100, 7)
    assert a is not None and len(a) == 100 and len(np.unique(a)) == 100
    assert (np.diff(a) > 0).all() and a.max() < 1000
    np.testing.assert_array_equal(a, cap_lists(1000, 100, 7))
    assert not np.array_equal(a, cap_lists(1000, 100, 8))


@pytest.fixture(scope="module")
def small():
    cfg = load_config("/nonexistent-winnow-home", overrides={
        "ranker": {"num_boost_round": 30, "early_stopping_rounds": 5},
        "models": {"als": {"iterations": 3}}})
    w = generate_world(400, 150, 16_000, seed=4)
    ds = dataset_from_frames(w.events, w.items, w.users, cfg.events, name="world")
    return cfg, ds


def test_features_of_lists_with_a_positive_equal_the_features_of_all_lists(small) -> None:
    """Dropping lists without a positive BEFORE their features changes no kept row."""
    cfg, ds = small
    cfg, mapping = served_ranker_config(cfg)
    inner = validation_split(ds.interactions, "stratified", ratio=0.8, seed=0)
    models = fit_sources(inner.train, cfg, list(mapping), mapping)
    state_csr = inner.train.to_csr(binary=True)
    users = np.flatnonzero(np.diff(state_csr.indptr) > 0)
    cands = generate_candidates(models, users, state_csr, per_source=30, dense_scores=False)
    y = label_lists(cands, inner.test)
    spec = fit_spec(ds, list(mapping), half_life_s=30 * 86400.0)
    catalog = FeatureCatalog.from_dataset(ds, spec)

    def feats(c):
        t = list_times(inner.train, c.users, "user_last")
        return offline_features(inner.train, catalog, spec, Lists(
            user=c.users, t=t, row_list=c.row_list, row_item=c.row_item,
            src_score=c.src_score, src_rank=c.src_rank))

    positive = np.bincount(cands.row_list, weights=y, minlength=len(users)) > 0
    assert 0 < positive.sum() < len(users)
    kept = cands.keep_lists(positive)
    np.testing.assert_array_equal(feats(kept), feats(cands)[positive[cands.row_list]])
    assert (np.diff(kept.row_list) >= 0).all() and kept.row_list.max() == positive.sum() - 1


def test_max_lists_caps_the_ranker_lists_and_says_so(small) -> None:
    cfg, ds = small
    capped = cfg.model_copy(update={"ranker": cfg.ranker.model_copy(update={"max_lists": 60})})
    cfg_s, mapping = served_ranker_config(capped)
    funnel = StackedRanker(ds, cfg_s, source_models=mapping).fit(ds.interactions)
    rep = funnel.report_
    assert rep["max_lists"] == 60 and rep["lists_eligible"] > 60
    assert rep["inner_lists"] <= 60


def test_served_ranker_reuses_the_bundle_models(small, monkeypatch) -> None:
    """The funnel's full-data sources are the models ``winnow train`` already fitted: only
    the inner split's models are fitted by the ranker stage."""
    import winnow.training.stacked as funnel_mod

    cfg, ds = small
    _, mapping = served_ranker_config(cfg)
    bundle_models = {reg: funnel_mod.build_model(reg, cfg).fit(ds.interactions) for reg in set(mapping.values())}
    fitted_on = []
    real = funnel_mod.fit_sources

    def spy(train, config, names, models=None):
        if names:
            fitted_on.append(len(train))
        return real(train, config, names, models)

    monkeypatch.setattr(funnel_mod, "fit_sources", spy)
    funnel, info = fit_served_ranker(cfg, ds, models=bundle_models)
    assert funnel is not None, info
    for src, reg in mapping.items():
        assert funnel.sources_[src] is bundle_models[reg]
    assert fitted_on and all(n < len(ds.interactions) for n in fitted_on), fitted_on  # inner split only


def test_stage_clock_records_stages_estimates_and_overlap() -> None:
    lines: list[str] = []
    previous = {"data": {"events": 1000}, "stages": {"a": {"wall_s": 10.0}, "b": {"wall_s": 4.0}}}
    clock = StageClock(["a", "b", "c"], events=2000, previous=previous, say=lines.append)
    assert clock.expected["a"] == pytest.approx(20.0) and clock.expected["b"] == pytest.approx(8.0)
    started = threading.Event()
    finish = threading.Event()

    def other() -> None:
        with clock.stage("b"):
            started.set()
            assert finish.wait(10)

    t = threading.Thread(target=other)
    with clock.stage("a"):
        t.start()
        assert started.wait(10)
        base = rss_bytes()
        block = np.ones(32_000_000)  # 256 MB while "a" runs: the sampler must see it
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # the sampler's period is 0.1 s
            with clock._lock:
                if clock._open["a"]["peak"] >= base + block.nbytes:
                    break
            time.sleep(0.01)
        del block
    finish.set()
    t.join(10)
    clock.skip("c")
    rep = clock.report()
    assert list(rep) == ["a", "b"]
    assert rep["a"]["concurrent_with"] == ["b"] and rep["b"]["concurrent_with"] == ["a"]
    assert rep["a"]["peak_rss_mib"] >= (base + 250e6) / 2**20
    assert clock.remaining_s() == 0.0
    assert any(line.startswith("[1/3] a") and "left)" in line for line in lines)
    with pytest.raises(ValueError, match="not in the plan"):
        with clock.stage("z"):
            pass
    total = clock.summary()
    assert total["peak_rss_mib"] >= (base + 250e6) / 2**20, (total, base / 2**20, rep)
