"""winnow.index: the vector index contract, its exact and HNSW backends, and the factory.

    index = build_index(config.index, dim=64, n_expected=len(items))
    index.upsert(item_indices, item_vectors)          # int64 [n], float32 [n, dim]
    ids, scores = index.search(user_vectors, 100, exclude=seen)   # int64/float32 [q, 100]
    index.save(bundle / "index");  index = load_index(bundle / "index")
"""

from __future__ import annotations

from pathlib import Path

from winnow.core.config import IndexConfig
from winnow.core.errors import BundleError
from winnow.index.base import MAX_ID, VectorIndex, read_manifest
from winnow.index.exact import ExactIndex
from winnow.index.hnsw import HNSWIndex

__all__ = ["MAX_ID", "ExactIndex", "HNSWIndex", "VectorIndex", "build_index", "load_index"]

_BACKENDS: dict[str, type[VectorIndex]] = {"exact": ExactIndex, "hnsw": HNSWIndex}


def build_index(config: IndexConfig, dim: int, n_expected: int, *,
                threads: int | None = None) -> VectorIndex:
    """An empty index for ``n_expected`` vectors of ``dim`` dimensions.

    Exact search when ``config.backend == "exact"`` or ``n_expected < config.exact_below``
    (below that size brute force is fast and exact); otherwise faiss HNSW with the config's
    M / efConstruction / efSearch. ``threads``: search threads (None: backend default --
    1 for HNSW, the BLAS default for exact).
    """
    if n_expected < 0:
        raise ValueError(f"n_expected must be >= 0, got {n_expected}")
    if config.backend == "exact" or n_expected < config.exact_below:
        return ExactIndex(dim, config.metric, threads=threads)
    return HNSWIndex(dim, config.metric, m=config.hnsw_m, ef_construction=config.ef_construction,
                     ef_search=config.ef_search, threads=1 if threads is None else threads)


def load_index(directory: str | Path) -> VectorIndex:
    """Load any saved index, dispatching on the manifest's backend; BundleError if corrupt."""
    manifest = read_manifest(Path(directory))
    cls = _BACKENDS.get(manifest["backend"])
    if cls is None:
        raise BundleError(f"{Path(directory) / 'manifest.json'}: unknown index backend "
                          f"{manifest['backend']!r} (known: {sorted(_BACKENDS)})")
    return cls.load(directory)
