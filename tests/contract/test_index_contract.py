"""One contract suite for every VectorIndex backend; exact search is the oracle.

The exact backend is itself checked against a plain numpy argsort over the raw vectors; the HNSW
backend against ExactIndex (recall@10 on clustered data, with and without exclusions).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from winnow.core.config import IndexConfig
from winnow.core.errors import BundleError
from winnow.index import ExactIndex, HNSWIndex, VectorIndex, build_index, load_index

DIM = 32
N = 20_000
N_QUERIES = 300

Factory = Callable[..., VectorIndex]
BACKENDS: dict[str, Factory] = {
    "exact": lambda dim, metric="ip": ExactIndex(dim, metric),
    "hnsw": lambda dim, metric="ip": HNSWIndex(dim, metric, m=16, ef_construction=100,
                                               ef_search=64),
}


def clustered(rng: np.random.Generator, n: int, dim: int = DIM, clusters: int = 100,
              centres: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian-mixture vectors (float32 [n, dim]) and the centres used."""
    if centres is None:
        centres = rng.normal(size=(clusters, dim))
    x = centres[rng.integers(0, len(centres), n)] + 0.4 * rng.normal(size=(n, dim))
    return x.astype(np.float32), centres


@pytest.fixture(scope="module")
def data() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    base, centres = clustered(rng, N)
    queries, _ = clustered(rng, N_QUERIES, centres=centres)
    ids = rng.permutation(10 * N)[:N].astype(np.int64)  # sparse caller ids, not positions
    return {"base": base, "queries": queries, "ids": ids}


@pytest.fixture(scope="module", params=sorted(BACKENDS))
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope="module")
def full(backend: str, data: dict[str, np.ndarray]) -> VectorIndex:
    index = BACKENDS[backend](DIM)
    index.upsert(data["ids"], data["base"])
    return index


@pytest.fixture(scope="module")
def oracle(data: dict[str, np.ndarray]) -> ExactIndex:
    index = ExactIndex(DIM)
    index.upsert(data["ids"], data["base"])
    return index


def recall(got: np.ndarray, truth: np.ndarray) -> float:
    hits = [len(set(g[g >= 0]) & set(t[t >= 0])) / max(1, (t >= 0).sum())
            for g, t in zip(got, truth)]
    return float(np.mean(hits))


def test_exact_matches_argsort(oracle: ExactIndex, data: dict[str, np.ndarray]) -> None:
    ids, scores = oracle.search(data["queries"][:50], 10)
    raw = data["queries"][:50] @ data["base"].T
    order = np.argsort(-raw, axis=1)[:, :10]
    np.testing.assert_array_equal(ids, data["ids"][order])
    np.testing.assert_allclose(scores, np.take_along_axis(raw, order, axis=1), rtol=1e-5)


def test_shapes_order_and_recall(full: VectorIndex, oracle: ExactIndex,
                                 data: dict[str, np.ndarray]) -> None:
    ids, scores = full.search(data["queries"], 10, ef_search=64)
    assert ids.shape == scores.shape == (N_QUERIES, 10)
    assert ids.dtype == np.int64 and scores.dtype == np.float32
    assert len(full) == N and full.dim == DIM and full.metric == "ip"
    assert np.all(np.diff(scores, axis=1) <= 1e-6), "results must be best first"
    assert np.isin(ids, data["ids"]).all()
    truth, _ = oracle.search(data["queries"], 10)
    assert recall(ids, truth) >= 0.95


def test_exclusions_honoured_and_recall_kept(full: VectorIndex, oracle: ExactIndex,
                                             data: dict[str, np.ndarray]) -> None:
    rng = np.random.default_rng(1)
    near, _ = oracle.search(data["queries"], 200)
    # per query: its 5 nearest ids plus 95 more from its neighbourhood, plus unknown ids
    excl = [np.concatenate([row[:5], rng.choice(row[5:], 95, replace=False), [10 * N + 5]])
            for row in near]
    ids, _ = full.search(data["queries"], 10, ef_search=128, exclude=excl)
    for got, banned in zip(ids, excl):
        assert not np.isin(got, banned).any()
    truth, _ = oracle.search(data["queries"], 10, exclude=excl)
    assert recall(ids, truth) >= 0.95
    # one shared array applies to every query
    shared = near[:, 0]
    ids, _ = full.search(data["queries"][:20], 10, exclude=shared)
    assert not np.isin(ids, shared).any()


def test_exclude_list_length_checked(full: VectorIndex, data: dict[str, np.ndarray]) -> None:
    with pytest.raises(ValueError, match="one per query"):
        full.search(data["queries"][:3], 5, exclude=[np.array([1]), np.array([2])])


def test_upsert_replaces(backend: str) -> None:
    rng = np.random.default_rng(2)
    x, _ = clustered(rng, 500)
    ids = np.arange(1000, 1500)
    index = BACKENDS[backend](DIM)
    index.upsert(ids, x)
    target = x[0] * 10  # id 1300 gets a new, dominant vector along x[0]
    index.upsert(np.array([1300]), target[None, :])
    assert len(index) == 500
    got, scores = index.search(x[0][None, :], 3)
    assert got[0, 0] == 1300
    assert scores[0, 0] == pytest.approx(float(x[0] @ target), rel=1e-5)
    # the replaced vector is gone: a query on the old vector never scores it as before
    got, scores = index.search(x[300][None, :], 500)
    pos = np.flatnonzero(got[0] == 1300)
    assert len(pos) == 1 and scores[0, pos[0]] == pytest.approx(float(x[300] @ target), rel=1e-4)


def test_remove_never_returned(backend: str, data: dict[str, np.ndarray]) -> None:
    index = BACKENDS[backend](DIM)
    index.upsert(data["ids"][:5000], data["base"][:5000])
    gone = data["ids"][:1000]
    index.remove(np.concatenate([gone, [10 * N + 1]]))  # unknown ids are ignored
    assert len(index) == 4000
    ids, _ = index.search(data["queries"], 10)
    assert not np.isin(ids, gone).any()
    oracle = ExactIndex(DIM)
    oracle.upsert(data["ids"][1000:5000], data["base"][1000:5000])
    truth, _ = oracle.search(data["queries"], 10)
    assert recall(ids, truth) >= 0.95
    # re-adding a removed id makes it searchable again
    index.upsert(gone[:1], data["queries"][:1] * 100)
    assert index.search(data["queries"][:1], 1)[0][0, 0] == gone[0]


def test_k_larger_than_n_pads(backend: str) -> None:
    index = BACKENDS[backend](4)
    vecs = np.eye(4, dtype=np.float32)[:3]
    index.upsert(np.array([5, 6, 7]), vecs)
    ids, scores = index.search(np.ones((2, 4), np.float32), 10)
    assert ids.shape == (2, 10)
    assert sorted(ids[0, :3]) == [5, 6, 7]
    assert (ids[:, 3:] == -1).all() and np.isneginf(scores[:, 3:]).all()
    ids, scores = index.search(np.ones((1, 4), np.float32), 10, exclude=np.array([6]))
    assert sorted(ids[0, :2]) == [5, 7] and (ids[0, 2:] == -1).all()
    empty = BACKENDS[backend](4)
    ids, scores = empty.search(np.ones((1, 4), np.float32), 3)
    assert (ids == -1).all() and np.isneginf(scores).all()


def test_save_load_round_trip(backend: str, data: dict[str, np.ndarray],
                              tmp_path: Path) -> None:
    index = BACKENDS[backend](DIM, "cosine")
    index.upsert(data["ids"][:3000], data["base"][:3000])
    index.remove(data["ids"][:100])  # tombstones / compaction must survive the round trip
    before = index.search(data["queries"][:50], 10, exclude=np.array(data["ids"][100:150]))
    index.save(tmp_path / "ix")
    loaded = load_index(tmp_path / "ix")
    assert type(loaded) is type(index)
    assert (len(loaded), loaded.dim, loaded.metric) == (2900, DIM, "cosine")
    after = loaded.search(data["queries"][:50], 10, exclude=np.array(data["ids"][100:150]))
    np.testing.assert_array_equal(before[0], after[0])
    np.testing.assert_array_equal(before[1], after[1])
    assert not list((tmp_path / "ix").glob("*.tmp"))


def test_cosine_vs_ip(backend: str) -> None:
    vecs = np.array([[1, 0], [10, 1], [0, 1]], np.float32)
    q = np.array([[1, -0.05]], np.float32)
    ip = BACKENDS[backend](2, "ip")
    ip.upsert(np.array([0, 1, 2]), vecs)
    cos = BACKENDS[backend](2, "cosine")
    cos.upsert(np.array([0, 1, 2]), vecs)
    assert ip.search(q, 1)[0][0, 0] == 1  # the long vector wins on inner product
    ids, scores = cos.search(q * 7, 3)  # query norm is irrelevant for cosine
    assert ids[0, 0] == 0
    expected = (vecs / np.linalg.norm(vecs, axis=1, keepdims=True)) @ (q[0] / np.linalg.norm(q))
    np.testing.assert_allclose(scores[0], np.sort(expected)[::-1], rtol=1e-5)


def test_dim_mismatch_names_dims(backend: str) -> None:
    index = BACKENDS[backend](8)
    with pytest.raises(ValueError, match=r"dim 5.*dim 8"):
        index.upsert(np.arange(3), np.zeros((3, 5), np.float32))
    index.upsert(np.arange(3), np.ones((3, 8), np.float32))
    with pytest.raises(ValueError, match=r"dim 7.*dim 8"):
        index.search(np.zeros((1, 7), np.float32), 2)


@pytest.mark.parametrize("bad_ids, bad_vecs, message", [
    (np.array([1, 1]), np.ones((2, 4)), "duplicate id"),
    (np.array([-3, 1]), np.ones((2, 4)), "got -3"),
    (np.array([1, 2, 3]), np.ones((2, 4)), "3 ids but 2 vectors"),
    (np.array([1, 2]), np.array([[1, 2, 3, np.nan], [1, 2, 3, 4]]), "row 0"),
    (np.array([1.5, 2.0]), np.ones((2, 4)), "integers"),
])
def test_bad_input_rejected(backend: str, bad_ids: np.ndarray, bad_vecs: np.ndarray,
                            message: str) -> None:
    index = BACKENDS[backend](4)
    with pytest.raises(ValueError, match=message):
        index.upsert(bad_ids, bad_vecs)
    assert len(index) == 0


def test_corrupt_file_raises_bundle_error(backend: str, tmp_path: Path) -> None:
    index = BACKENDS[backend](4)
    index.upsert(np.arange(50), np.random.default_rng(3).normal(size=(50, 4)))
    index.save(tmp_path / "ix")
    data_file = next(p for p in (tmp_path / "ix").iterdir() if p.name != "manifest.json")
    raw = bytearray(data_file.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    data_file.write_bytes(bytes(raw))
    with pytest.raises(BundleError, match="checksum mismatch"):
        load_index(tmp_path / "ix")
    with pytest.raises(BundleError, match="not found"):
        load_index(tmp_path / "nowhere")


def test_factory_chooses_by_size() -> None:
    cfg = IndexConfig(backend="hnsw", metric="cosine", hnsw_m=8, exact_below=1000)
    small = build_index(cfg, 16, 999)
    big = build_index(cfg, 16, 1000)
    assert isinstance(small, ExactIndex) and isinstance(big, HNSWIndex)
    assert big.m == 8 and big.metric == "cosine" and big.dim == 16
    assert isinstance(build_index(IndexConfig(backend="exact"), 16, 10**7), ExactIndex)
