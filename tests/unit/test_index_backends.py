"""Backend-specific behaviour of winnow.index (the shared contract is in tests/contract)."""

from __future__ import annotations

import json
from pathlib import Path

import faiss
import numpy as np
import pytest

from winnow.core.errors import BundleError
from winnow.index import ExactIndex, HNSWIndex, load_index


def _vectors(n: int, dim: int = 8, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)


def test_hnsw_tombstones_then_compacts() -> None:
    x = _vectors(400)
    index = HNSWIndex(8, max_deleted_fraction=0.25)
    index.upsert(np.arange(400), x)
    index.remove(np.arange(50))
    assert index.n_deleted == 50 and len(index) == 350
    index.upsert(np.arange(50, 100), x[50:100] * 2)  # replacements are tombstones too
    assert index.n_deleted == 100  # 100 / 450 slots dead: under the threshold
    index.upsert(np.arange(100, 130), x[100:130] * 2)
    assert index.n_deleted == 0, "more than 25% dead must trigger a rebuild"
    assert len(index) == 350
    exact = ExactIndex(8)
    exact.upsert(np.arange(100, 400), x[100:400])
    exact.upsert(np.arange(50, 130), x[50:130] * 2)
    got, got_scores = index.search(x[:20], 5, ef_search=200)
    want, want_scores = exact.search(x[:20], 5)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_allclose(got_scores, want_scores, rtol=1e-5)


def test_hnsw_search_restores_thread_count() -> None:
    before = faiss.omp_get_max_threads()
    index = HNSWIndex(8, threads=1)
    index.upsert(np.arange(10), _vectors(10))
    index.search(_vectors(3, seed=1), 2)
    assert faiss.omp_get_max_threads() == before


def test_hnsw_rejects_bad_ef() -> None:
    index = HNSWIndex(8)
    index.upsert(np.arange(10), _vectors(10))
    with pytest.raises(ValueError, match="ef_search must be >= 1, got 0"):
        index.search(_vectors(1), 2, ef_search=0)
    with pytest.raises(ValueError, match="max_deleted_fraction"):
        HNSWIndex(8, max_deleted_fraction=0.0)


def test_exact_batches_give_same_answer() -> None:
    x = _vectors(300)
    small = ExactIndex(8, batch_bytes=4 * 300 * 3)  # three queries per block
    big = ExactIndex(8)
    for index in (small, big):
        index.upsert(np.arange(300) * 2, x)
    excl = [np.array([0, 2, 4]) for _ in range(10)]
    a = small.search(x[:10], 7, exclude=excl)
    b = big.search(x[:10], 7, exclude=excl)
    np.testing.assert_array_equal(a[0], b[0])
    assert not np.isin(a[0], [0, 2, 4]).any()


def test_exact_remove_compacts_and_keeps_ids() -> None:
    x = _vectors(20)
    index = ExactIndex(8)
    index.upsert(np.arange(20) + 100, x)
    index.remove(np.array([100, 105, 119]))
    ids, vecs = index.vectors()
    assert len(index) == 17 and sorted(ids) == sorted(set(range(100, 120)) - {100, 105, 119})
    np.testing.assert_array_equal(vecs[ids == 110][0], x[10])


@pytest.mark.parametrize("cls", [ExactIndex, HNSWIndex])
def test_manifest_contents_and_backend_check(cls: type, tmp_path: Path) -> None:
    index = cls(8, "cosine")
    index.upsert(np.arange(30), _vectors(30))
    index.save(tmp_path)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["backend"] == cls.backend and manifest["count"] == 30
    assert manifest["dim"] == 8 and manifest["metric"] == "cosine"
    assert set(manifest["files"]) == {p.name for p in tmp_path.iterdir()} - {"manifest.json"}
    other = HNSWIndex if cls is ExactIndex else ExactIndex
    with pytest.raises(BundleError, match="backend is"):
        other.load(tmp_path)
    manifest["backend"] = "annoy"
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="unknown index backend 'annoy'"):
        load_index(tmp_path)


@pytest.mark.parametrize("cls", [ExactIndex, HNSWIndex])
def test_exclusion_of_unknown_or_negative_ids_is_harmless(cls: type) -> None:
    index = cls(8)
    x = _vectors(30)
    index.upsert(np.arange(30), x)
    want, _ = index.search(x[:2], 5)
    # -1 must not wrap around to the last slot; ids beyond the table are ignored
    got, _ = index.search(x[:2], 5, exclude=np.array([-1, -30, 10**9]))
    np.testing.assert_array_equal(got, want)
    per_query = np.stack([want[0, :2], want[1, :2]])  # a 2-D array = one row per query
    got, _ = index.search(x[:2], 5, exclude=per_query)
    assert not np.isin(got[0], want[0, :2]).any() and not np.isin(got[1], want[1, :2]).any()
