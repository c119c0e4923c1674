"""The vector index contract shared by every backend (exact numpy, faiss HNSW).

Ids are the caller's int64 ids -- in winnow, dense internal item indices (see
winnow.core.ids) -- never positions inside the index. They must lie in [0, MAX_ID]; -1 is the
padding value returned when fewer than k results exist. ``upsert`` of an existing id replaces its
vector; ``remove`` makes an id unreachable. Scores are similarities (higher is better): the inner
product for metric "ip", the cosine for metric "cosine" (stored vectors and queries are
L2-normalised; a zero vector stays zero).

An index saves to a directory as data plus a manifest (``manifest.json``: format version,
backend, dim, metric, count, params, sha256 of every file); no pickle anywhere. ``load`` checks
the checksums and raises BundleError on any mismatch before a native reader sees the bytes.
"""

from __future__ import annotations

import hashlib
import json
import os
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar, Literal, Self

import numpy as np

from winnow.core.errors import BundleError

Metric = Literal["ip", "cosine"]
METRICS: tuple[str, ...] = ("ip", "cosine")
MAX_ID = 2**31 - 1  # ids are dense item indices; the id -> slot table is an array
MANIFEST = "manifest.json"
FORMAT_VERSION = 1
Exclude = list[np.ndarray] | np.ndarray | None


class IdSlots:
    """Two-way map between caller ids and internal slots (rows / faiss labels).

    ``slot_of[id]`` is the live slot of ``id`` or -1; ``id_at[slot]`` is the id stored in a slot
    or -1 for a free / deleted slot. Both are plain int64 arrays (8 bytes per id, O(1) lookups).
    """

    def __init__(self) -> None:
        self.slot_of = np.full(0, -1, np.int64)
        self.id_at = np.full(0, -1, np.int64)
        self.n_slots = 0  # slots in use, live or dead

    def lookup(self, ids: np.ndarray) -> np.ndarray:
        """Slots of ``ids`` (int64 [n]); -1 for ids not present."""
        out = np.full(len(ids), -1, np.int64)
        inside = (ids >= 0) & (ids < len(self.slot_of))
        out[inside] = self.slot_of[ids[inside]]
        return out

    def assign(self, ids: np.ndarray, slots: np.ndarray) -> None:
        """Record that ``ids[i]`` now lives in ``slots[i]`` (slots may extend n_slots)."""
        if len(ids) == 0:
            return
        top_id = int(ids.max()) + 1
        if top_id > len(self.slot_of):
            grown = np.full(max(top_id, 2 * len(self.slot_of)), -1, np.int64)
            grown[: len(self.slot_of)] = self.slot_of
            self.slot_of = grown
        top_slot = int(slots.max()) + 1
        if top_slot > len(self.id_at):
            grown = np.full(max(top_slot, 2 * len(self.id_at)), -1, np.int64)
            grown[: len(self.id_at)] = self.id_at
            self.id_at = grown
        self.slot_of[ids] = slots
        self.id_at[slots] = ids
        self.n_slots = max(self.n_slots, top_slot)

    def release(self, slots: np.ndarray) -> None:
        """Forget the ids held in ``slots`` (their slots become dead)."""
        held = self.id_at[slots]
        self.slot_of[held[held >= 0]] = -1
        self.id_at[slots] = -1

    @classmethod
    def from_ids(cls, id_at: np.ndarray) -> IdSlots:
        """Rebuild from a saved ``id_at`` array (int64 [n_slots], -1 = dead slot)."""
        table = cls()
        slots = np.flatnonzero(id_at >= 0)
        table.id_at = np.full(len(id_at), -1, np.int64)
        table.n_slots = len(id_at)
        table.assign(id_at[slots], slots)
        table.n_slots = len(id_at)
        return table


def check_ids(ids: Any, what: str = "ids") -> np.ndarray:
    """Validate caller ids: 1-D integers in [0, MAX_ID], no duplicates. Returns int64 [n]."""
    arr = np.asarray(ids)
    if arr.ndim != 1:
        raise ValueError(f"{what} must be 1-D, got shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{what} must be integers, got dtype {arr.dtype}")
    arr = arr.astype(np.int64, copy=False)
    if arr.size:
        lo, hi = int(arr.min()), int(arr.max())
        if lo < 0 or hi > MAX_ID:
            bad = lo if lo < 0 else hi
            raise ValueError(f"{what} must lie in [0, {MAX_ID}], got {bad}")
    return arr


def check_vectors(vectors: Any, dim: int, what: str = "vectors") -> np.ndarray:
    """Validate a float [n, dim] matrix of finite values. Returns C-contiguous float32."""
    arr = np.asarray(vectors)
    if arr.ndim == 1 and what == "queries":
        arr = arr[None, :]
    if arr.ndim != 2:
        raise ValueError(f"{what} must be 2-D [n, {dim}], got shape {arr.shape}")
    if arr.shape[1] != dim:
        raise ValueError(f"{what} have dim {arr.shape[1]}, but the index has dim {dim}")
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    if not np.isfinite(arr).all():
        row = int(np.flatnonzero(~np.isfinite(arr).all(axis=1))[0])
        raise ValueError(f"{what} row {row} contains NaN or inf")
    return arr


def normalise(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (a zero row stays zero). Returns a new float32 array."""
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return (x / norms).astype(np.float32, copy=False)


def check_exclude(exclude: Exclude, n_queries: int) -> list[np.ndarray] | np.ndarray | None:
    """Normalise ``exclude``: None, one shared int64 array, or a list of n_queries arrays."""
    if exclude is None:
        return None
    if isinstance(exclude, np.ndarray) and exclude.ndim == 1:
        return np.asarray(exclude, np.int64)
    items = list(exclude)
    if len(items) != n_queries:
        raise ValueError(f"exclude has {len(items)} entries, expected one per query ({n_queries})")
    return [np.asarray(e, np.int64).reshape(-1) for e in items]


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class VectorIndex(ABC):
    """Top-k maximum-similarity search over vectors keyed by caller int64 ids."""

    backend: ClassVar[str]

    def __init__(self, dim: int, metric: Metric = "ip") -> None:
        if int(dim) < 1:
            raise ValueError(f"dim must be >= 1, got {dim}")
        if metric not in METRICS:
            raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
        self._dim = int(dim)
        self._metric: Metric = metric

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def metric(self) -> Metric:
        return self._metric

    @abstractmethod
    def __len__(self) -> int:
        """Number of live ids."""

    @abstractmethod
    def upsert(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Insert or replace: ids int64 [n] (unique), vectors float32 [n, dim]."""

    @abstractmethod
    def remove(self, ids: np.ndarray) -> None:
        """Remove ids (unknown ids are ignored); they are never returned again."""

    @abstractmethod
    def search(self, queries: np.ndarray, k: int, *, ef_search: int | None = None,
               exclude: Exclude = None) -> tuple[np.ndarray, np.ndarray]:
        """Top-k ids by similarity for each query, best first.

        Args:
            queries: float32 [q, dim] (a single [dim] vector is treated as [1, dim]).
            k: results per query; rows are padded with id -1 / score -inf when fewer exist.
            ef_search: HNSW candidate-list size (ignored by exact search); None = default.
            exclude: ids never to return -- one array for all queries, or a list of q arrays.
        Returns:
            (ids int64 [q, k], scores float32 [q, k]).
        """

    @abstractmethod
    def params(self) -> dict[str, Any]:
        """Backend parameters recorded in the manifest and passed back to the constructor."""

    @abstractmethod
    def _write_files(self, directory: Path) -> list[str]:
        """Write the data files into ``directory``; return their names."""

    @classmethod
    @abstractmethod
    def _read_files(cls, directory: Path, manifest: dict[str, Any]) -> Self:
        """Rebuild an index from verified files."""

    # -- shared helpers ---------------------------------------------------------------------
    def _prepare_upsert(self, ids: Any, vectors: Any) -> tuple[np.ndarray, np.ndarray]:
        arr_ids = check_ids(ids)
        vecs = check_vectors(vectors, self._dim)
        if len(arr_ids) != len(vecs):
            raise ValueError(f"{len(arr_ids)} ids but {len(vecs)} vectors")
        uniq, counts = np.unique(arr_ids, return_counts=True)
        if len(uniq) != len(arr_ids):
            raise ValueError(f"duplicate id in one upsert: {int(uniq[counts > 1][0])}")
        if self._metric == "cosine":
            vecs = normalise(vecs)
        return arr_ids, vecs

    def _prepare_queries(self, queries: Any, k: int) -> np.ndarray:
        if int(k) < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        q = check_vectors(queries, self._dim, "queries")
        return normalise(q) if self._metric == "cosine" else q

    # -- persistence ----------------------------------------------------------------------
    def save(self, directory: str | Path) -> None:
        """Write the index to ``directory`` (created if needed): data files, then the manifest.

        Each file is written under a temporary name and renamed; the manifest goes last, so a
        crash leaves either the previous manifest or a manifest whose checksums catch it.
        """
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        names = self._write_files(out)
        manifest = {
            "format_version": FORMAT_VERSION,
            "backend": self.backend,
            "dim": self._dim,
            "metric": self._metric,
            "count": len(self),
            "params": self.params(),
            "files": {name: sha256_file(out / name) for name in names},
        }
        tmp = out / (MANIFEST + ".tmp")
        tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True), encoding="utf-8")
        os.replace(tmp, out / MANIFEST)

    @classmethod
    def load(cls, directory: str | Path) -> Self:
        """Load an index saved by this backend; BundleError if missing, corrupt or mismatched."""
        path = Path(directory)
        manifest = read_manifest(path)
        if manifest["backend"] != cls.backend:
            raise BundleError(f"{path / MANIFEST}: backend is {manifest['backend']!r}, "
                              f"expected {cls.backend!r}")
        index = cls._read_files(path, manifest)
        if len(index) != manifest["count"]:
            raise BundleError(f"{path}: manifest count {manifest['count']} but the files hold "
                              f"{len(index)} vectors")
        return index


def read_manifest(directory: Path) -> dict[str, Any]:
    """Read and verify ``manifest.json`` and the checksums of every file it lists."""
    mpath = directory / MANIFEST
    try:
        manifest = json.loads(mpath.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BundleError(f"index manifest not found: {mpath}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BundleError(f"{mpath}: not valid JSON: {exc}") from None
    for key in ("format_version", "backend", "dim", "metric", "count", "params", "files"):
        if key not in manifest:
            raise BundleError(f"{mpath}: missing field {key!r}")
    if manifest["format_version"] != FORMAT_VERSION:
        raise BundleError(f"{mpath}: format_version {manifest['format_version']!r} is not "
                          f"supported (expected {FORMAT_VERSION})")
    for name, expected in manifest["files"].items():
        fpath = directory / name
        if not fpath.is_file():
            raise BundleError(f"index file missing: {fpath}")
        actual = sha256_file(fpath)
        if actual != expected:
            raise BundleError(f"{fpath}: checksum mismatch (sha256 {actual[:12]}..., manifest "
                              f"says {expected[:12]}...); the file is corrupt")
    return manifest


def write_npz(path: Path, **arrays: np.ndarray) -> None:
    """np.savez to a temporary name, then rename (never a half-written file under ``path``)."""
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as fh:
        kwds: dict[str, Any] = dict(arrays)
        np.savez(fh, **kwds)
    os.replace(tmp, path)


def read_npz(path: Path, *keys: str) -> list[np.ndarray]:
    """Arrays ``keys`` from an npz written by write_npz (no pickle)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            return [np.asarray(data[key]) for key in keys]
    except (KeyError, ValueError, OSError) as exc:
        raise BundleError(f"{path}: unreadable index data: {exc}") from None


def pad_results(n_queries: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Empty result arrays: ids -1 and scores -inf, shapes [n_queries, k]."""
    return (np.full((n_queries, k), -1, np.int64),
            np.full((n_queries, k), -np.inf, np.float32))
