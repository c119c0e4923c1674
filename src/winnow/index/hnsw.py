"""Approximate search with faiss ``IndexHNSWFlat`` (inner product; cosine = normalised IP).

faiss HNSW cannot delete (``IndexHNSW.remove_ids`` raises, and ``IndexIDMap2`` forwards to it),
so ids are mapped to faiss labels (slots) here, and removal / replacement is a tombstone: the
old slot is dropped from an ``IDSelectorBitmap`` of live slots that every search passes to faiss
in ``SearchParametersHNSW``. Dead nodes still route the graph walk (recall holds), but they cost
memory and search time, so when more than ``max_deleted_fraction`` of the slots are dead the
graph is rebuilt from the live vectors (``compact()``; O(n log n), minutes at 1e6 -- call it
yourself off the serving path if that matters, or raise the fraction).

Exclusions are filtered inside faiss' C++ search loop with
``IDSelectorAnd(live, IDSelectorNot(IDSelectorBatch(excluded slots)))``; a per-query list of
exclusions runs one faiss call per query (one selector each), a shared array one call in all.

Threads: faiss uses OpenMP. ``threads`` (default 1) is set around each search -- one thread gives
the lowest single-query latency; ``build_threads`` (default: OpenMP's) is used when adding.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Self

import faiss
import numpy as np

from winnow.core.errors import BundleError
from winnow.index.base import (Exclude, IdSlots, Metric, VectorIndex, check_exclude, check_ids,
                               pad_results, read_npz, write_npz)

GRAPH_FILE = "hnsw.faiss"
IDS_FILE = "hnsw_ids.npz"


@contextmanager
def omp_threads(n: int | None) -> Iterator[None]:
    """Set faiss' OpenMP thread count for the block (None: leave it), then restore it."""
    if n is None:
        yield
        return
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(int(n))
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


class HNSWIndex(VectorIndex):
    """faiss HNSW graph over caller int64 ids, with tombstone removal and filtered search.

    Args:
        dim: vector dimension.
        metric: "ip" or "cosine".
        m: graph degree (faiss M; layer 0 has 2*M links).
        ef_construction: candidate list size while building.
        ef_search: default candidate list size while searching (raised to k when smaller).
        max_deleted_fraction: rebuild the graph when dead slots exceed this fraction (0 < f <= 1;
            1 never rebuilds automatically).
        threads: OpenMP threads for search (None: leave the process setting).
        build_threads: OpenMP threads for insertion (None: leave the process setting).
    """

    backend = "hnsw"

    def __init__(self, dim: int, metric: Metric = "ip", *, m: int = 32,
                 ef_construction: int = 128, ef_search: int = 64,
                 max_deleted_fraction: float = 0.3, threads: int | None = 1,
                 build_threads: int | None = None) -> None:
        super().__init__(dim, metric)
        if m < 2:
            raise ValueError(f"m must be >= 2, got {m}")
        if ef_construction < 1 or ef_search < 1:
            raise ValueError(f"ef_construction and ef_search must be >= 1, got "
                             f"{ef_construction} and {ef_search}")
        if not 0 < max_deleted_fraction <= 1:
            raise ValueError(f"max_deleted_fraction must be in (0, 1], got {max_deleted_fraction}")
        self.m = int(m)
        self.ef_construction = int(ef_construction)
        self.ef_search = int(ef_search)
        self.max_deleted_fraction = float(max_deleted_fraction)
        self.threads = threads
        self.build_threads = build_threads
        self._index = self._new_graph()
        self._slots = IdSlots()
        self._n_live = 0
        self._live: tuple[Any, np.ndarray] | None = None  # (IDSelectorBitmap, its bitmap)

    def _new_graph(self) -> faiss.IndexHNSWFlat:
        graph = faiss.IndexHNSWFlat(self._dim, self.m, faiss.METRIC_INNER_PRODUCT)
        graph.hnsw.efConstruction = self.ef_construction
        graph.hnsw.efSearch = self.ef_search
        return graph

    def __len__(self) -> int:
        return self._n_live

    @property
    def n_deleted(self) -> int:
        """Dead slots (tombstones) still in the graph."""
        return int(self._index.ntotal) - self._n_live

    def params(self) -> dict[str, Any]:
        return {"m": self.m, "ef_construction": self.ef_construction,
                "ef_search": self.ef_search, "max_deleted_fraction": self.max_deleted_fraction}

    # -- mutation -------------------------------------------------------------------------
    def upsert(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        arr_ids, vecs = self._prepare_upsert(ids, vectors)
        if len(arr_ids) == 0:
            return
        old = self._slots.lookup(arr_ids)
        old = old[old >= 0]
        start = int(self._index.ntotal)
        with omp_threads(self.build_threads):
            self._index.add(vecs)  # first: if faiss fails, the id map is still consistent
        self._slots.release(old)  # replaced vectors become tombstones
        self._slots.assign(arr_ids, np.arange(start, start + len(arr_ids), dtype=np.int64))
        self._n_live += len(arr_ids) - len(old)
        self._after_mutation()

    def remove(self, ids: np.ndarray) -> None:
        slots = self._slots.lookup(check_ids(ids))
        slots = np.unique(slots[slots >= 0])
        if len(slots) == 0:
            return
        self._slots.release(slots)
        self._n_live -= len(slots)
        self._after_mutation()

    def _after_mutation(self) -> None:
        total = int(self._index.ntotal)
        if total and self.n_deleted > self.max_deleted_fraction * total:
            self.compact()
        else:
            self._refresh_live()

    def _refresh_live(self) -> None:
        """Rebuild the live-slot selector (None when nothing is dead).

        Built eagerly here, not lazily in search, so concurrent searches only read it; the
        selector and the bitmap memory it points into are kept together in one tuple.
        """
        if self.n_deleted == 0:
            self._live = None
            return
        bits = np.packbits(self._slots.id_at[: int(self._index.ntotal)] >= 0, bitorder="little")
        self._live = (faiss.IDSelectorBitmap(len(bits), faiss.swig_ptr(bits)), bits)

    def compact(self) -> None:
        """Rebuild the graph from the live vectors only (drops every tombstone)."""
        total = int(self._index.ntotal)
        live = np.flatnonzero(self._slots.id_at[:total] >= 0)
        ids = self._slots.id_at[live]
        vecs = self._index.reconstruct_n(0, total)[live] if total else None
        self._index = self._new_graph()
        self._slots = IdSlots()
        if vecs is not None and len(live):
            with omp_threads(self.build_threads):
                self._index.add(np.ascontiguousarray(vecs))
            self._slots.assign(ids, np.arange(len(ids), dtype=np.int64))
        self._n_live = len(ids)
        self._live = None

    # -- search ---------------------------------------------------------------------------
    def search(self, queries: np.ndarray, k: int, *, ef_search: int | None = None,
               exclude: Exclude = None) -> tuple[np.ndarray, np.ndarray]:
        q = self._prepare_queries(queries, k)
        k = int(k)
        ef = self.ef_search if ef_search is None else int(ef_search)
        if ef < 1:
            raise ValueError(f"ef_search must be >= 1, got {ef_search}")
        ef = max(ef, k)
        excl = check_exclude(exclude, len(q))
        if self._n_live == 0 or len(q) == 0:
            return pad_results(len(q), k)
        live_pair = self._live  # a local reference keeps selector and bitmap alive
        live = None if live_pair is None else live_pair[0]
        with omp_threads(self.threads):
            if isinstance(excl, list):
                labels = np.empty((len(q), k), np.int64)
                scores = np.empty((len(q), k), np.float32)
                for i, row in enumerate(excl):
                    scores[i:i + 1], labels[i:i + 1] = self._search_faiss(
                        q[i:i + 1], k, ef, live, row)
            else:
                scores, labels = self._search_faiss(q, k, ef, live, excl)
        found = labels >= 0
        ids = np.where(found, self._slots.id_at[np.where(found, labels, 0)], -1)
        scores = np.where(found, scores, -np.inf).astype(np.float32, copy=False)
        return ids.astype(np.int64, copy=False), scores

    def _search_faiss(self, q: np.ndarray, k: int, ef: int, live: Any,
                      excluded_ids: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """One faiss call; the selector objects stay referenced until it returns."""
        sel = live
        batch = not_sel = None
        if excluded_ids is not None and len(excluded_ids):
            slots = self._slots.lookup(excluded_ids)
            slots = slots[slots >= 0]
            if len(slots):
                batch = faiss.IDSelectorBatch(slots)
                not_sel = faiss.IDSelectorNot(batch)
                sel = not_sel if live is None else faiss.IDSelectorAnd(live, not_sel)
        # faiss 1.15's __init__.pyi omits this SWIG class (it exists at runtime)
        params = faiss.SearchParametersHNSW(efSearch=ef)  # type: ignore[attr-defined]
        if sel is not None:
            params.sel = sel
        scores, labels = self._index.search(q, k, params=params)
        del batch, not_sel, sel  # explicit: they must outlive the call above
        return scores, labels

    # -- persistence ----------------------------------------------------------------------
    def _write_files(self, directory: Path) -> list[str]:
        tmp = directory / (GRAPH_FILE + ".tmp")
        faiss.write_index(self._index, str(tmp))
        os.replace(tmp, directory / GRAPH_FILE)
        write_npz(directory / IDS_FILE, id_at=self._slots.id_at[: int(self._index.ntotal)])
        return [GRAPH_FILE, IDS_FILE]

    @classmethod
    def _read_files(cls, directory: Path, manifest: dict[str, Any]) -> Self:
        (id_at,) = read_npz(directory / IDS_FILE, "id_at")
        path = directory / GRAPH_FILE
        try:
            graph = faiss.read_index(str(path))  # already the concrete class
        except RuntimeError as exc:
            raise BundleError(f"{path}: faiss could not read the index: {exc}") from None
        dim = int(manifest["dim"])
        if (not isinstance(graph, faiss.IndexHNSWFlat) or graph.d != dim
                or graph.metric_type != faiss.METRIC_INNER_PRODUCT):
            raise BundleError(f"{path}: expected an inner-product IndexHNSWFlat of dim {dim}, "
                              f"got {type(graph).__name__} of dim {graph.d}")
        if graph.ntotal != len(id_at):
            raise BundleError(f"{path}: graph holds {graph.ntotal} vectors but {IDS_FILE} maps "
                              f"{len(id_at)}")
        index = cls(dim, manifest["metric"], **manifest["params"])
        graph.hnsw.efSearch = index.ef_search
        index._index = graph
        index._slots = IdSlots.from_ids(id_at.astype(np.int64))
        index._n_live = int((id_at >= 0).sum())
        index._refresh_live()
        return index
