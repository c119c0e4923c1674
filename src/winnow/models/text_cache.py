"""Item-text vectors with a cache in the home: a retrain encodes only new or changed texts.

``encode_cached(encoder, texts, cache=DIR)`` -> (float32 [len(texts), encoder.dim], report).
Empty texts get zero vectors; duplicate texts are encoded once. The report is what the bundle
manifest records (``engine.two_tower.text``): texts ``encoded`` now, taken from the ``cached``
file, ``empty``, the ``cache`` file and, when the cache was not used, ``cache_note`` (why).

The cache is one file per text backend, ``DIR/<backend>.npz``, holding the vectors of the last
catalog that backend encoded (entries for texts no longer in the catalog are dropped, so it is
bounded by the catalog):

- ``keys``    uint8 [n, 16]: BLAKE2b-128 digests of the UTF-8 texts, sorted (16 bytes a text:
  1M entries cost 16 MB of keys, not the ~300 MB of 64-character hex strings);
- ``vectors`` float32 [n, dim], row i the vector of ``keys[i]``'s text;
- ``meta``    a JSON string: format version, ``encoder`` (the encoder's ``cache_id``: model,
  package version, precision, token cap, torch version, dim) and n.

Only encoders whose vectors depend on the text alone declare a ``cache_id`` (MiniLM); an encoder
fitted on each run's catalog (TF-IDF + SVD) has ``cache_id = None`` and is never cached (its
vectors from another fit are other vectors). A cache written for another encoder, or one that
does not read back (truncated, bad zip CRC, wrong shapes or dtypes, non-finite vectors) is
ignored with a warning and replaced after this run's encode: never a crash, never vectors from
another model. The file is replaced atomically (unique temp sibling, fsync, rename).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from winnow.core.files import replace_atomic

log = logging.getLogger(__name__)

CACHE_FORMAT = 1
DIGEST_BYTES = 16


class TextEncoder(Protocol):
    """What ``encode_cached`` needs of an encoder (``content.MiniLMEncoder``, ``TfidfSvdEncoder``)."""

    @property
    def backend(self) -> str: ...

    @property
    def dim(self) -> int: ...

    @property
    def cache_id(self) -> str | None: ...

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


def text_digests(texts: Sequence[str]) -> np.ndarray:
    """uint8 [len(texts), 16]: BLAKE2b-128 of each text's UTF-8 bytes."""
    out = np.empty((len(texts), DIGEST_BYTES), np.uint8)
    for i, t in enumerate(texts):
        out[i] = np.frombuffer(hashlib.blake2b(t.encode("utf-8"), digest_size=DIGEST_BYTES).digest(), np.uint8)
    return out


def _as_keys(digests: np.ndarray) -> np.ndarray:
    """The digests as one comparable 16-byte string each (dtype S16), for sort / searchsorted."""
    return np.ascontiguousarray(digests).view(f"S{DIGEST_BYTES}").ravel()


def cache_file(directory: Path, backend: str) -> Path:
    return Path(directory) / f"{backend}.npz"


def _read(path: Path, encoder_id: str, dim: int) -> tuple[np.ndarray, np.ndarray] | str:
    """(sorted S16 keys, float32 [n, dim] vectors) of a usable cache, else why it is not usable."""
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            if meta.get("format") != CACHE_FORMAT:
                return f"format {meta.get('format')!r}, expected {CACHE_FORMAT}"
            if meta.get("encoder") != encoder_id:
                return f"written by another encoder ({meta.get('encoder')!r}; this run: {encoder_id!r})"
            keys, vectors = z["keys"], z["vectors"]
    except Exception as exc:  # a truncated / corrupt file must never stop training
        return f"unreadable ({type(exc).__name__}: {exc})"
    n = int(meta.get("n", -1))
    if keys.dtype != np.uint8 or keys.shape != (n, DIGEST_BYTES):
        return f"keys {keys.dtype} {keys.shape}, expected uint8 ({n}, {DIGEST_BYTES})"
    if vectors.dtype != np.float32 or vectors.shape != (n, dim):
        return f"vectors {vectors.dtype} {vectors.shape}, expected float32 ({n}, {dim})"
    skeys = _as_keys(keys)
    if n > 1 and not (skeys[1:] > skeys[:-1]).all():
        return "keys are not sorted and distinct"
    if not np.isfinite(vectors).all():
        return "non-finite vectors"
    return skeys, vectors


def _write(path: Path, encoder_id: str, keys: np.ndarray, vectors: np.ndarray) -> None:
    """Replace ``path`` atomically with (keys uint8 [n, 16] sorted, vectors float32 [n, dim])."""
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = json.dumps({"format": CACHE_FORMAT, "encoder": encoder_id, "n": len(keys)})
    replace_atomic(path, lambda f: np.savez(f, keys=keys, vectors=vectors, meta=np.array(meta)))


def encode_cached(encoder: TextEncoder, texts: Sequence[str], *,
                  cache: str | Path | None = None) -> tuple[np.ndarray, dict[str, Any]]:
    """(float32 [len(texts), encoder.dim] vectors, report) -- see the module docstring.

    Without ``cache`` (or with an encoder that has no ``cache_id``) every distinct non-empty
    text is encoded. A cache that cannot be written (disk full, read-only home) is reported in
    ``cache_note`` and training goes on with the vectors it computed.
    """
    rows = np.array([i for i, t in enumerate(texts) if t], np.int64)
    report: dict[str, Any] = {"backend": encoder.backend, "texts": len(texts), "empty": len(texts) - len(rows),
                              "encoded": 0, "cached": 0, "cache": None}
    if not len(rows):
        return np.zeros((len(texts), encoder.dim), np.float32), report
    keys = _as_keys(text_digests([texts[i] for i in rows]))
    uniq, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    vectors = np.zeros((len(uniq), encoder.dim), np.float32)
    todo = np.ones(len(uniq), bool)
    encoder_id = encoder.cache_id
    path = cache_file(Path(cache), encoder.backend) if cache is not None and encoder_id is not None else None
    old_n = -1
    if cache is not None and encoder_id is None:
        report["cache_note"] = f"not cached: the {encoder.backend} encoder is fitted on each run's catalog"
    if path is not None:
        report["cache"] = str(path)
        got = _read(path, encoder_id, encoder.dim) if path.exists() else "no cache file yet"  # type: ignore[arg-type]
        if isinstance(got, str):
            report["cache_note"] = got
            if path.exists():
                log.warning("text vector cache %s ignored: %s; it is rebuilt from this run's encode", path, got)
        else:
            old_keys, old_vectors = got
            old_n = len(old_keys)
            pos = np.minimum(np.searchsorted(old_keys, uniq), max(old_n - 1, 0))
            hit = (old_keys[pos] == uniq) if old_n else np.zeros(len(uniq), bool)
            if old_n:  # every row gathered in place (no [n, dim] temporary); misses are encoded below
                np.take(old_vectors, pos, axis=0, out=vectors)
            todo = ~hit
            del old_keys, old_vectors
    if todo.any():
        fresh = np.asarray(encoder.encode([texts[rows[first[j]]] for j in np.flatnonzero(todo)]), np.float32)
        if fresh.shape != (int(todo.sum()), encoder.dim):
            raise ValueError(f"{encoder.backend} encoder returned {fresh.shape}, expected ({int(todo.sum())}, "
                             f"{encoder.dim})")
        vectors[todo] = fresh
        del fresh
    report["encoded"], report["cached"] = int(todo.sum()), int((~todo).sum())
    report["distinct"] = len(uniq)
    if path is not None and (todo.any() or old_n != len(uniq)):
        try:
            _write(path, encoder_id, uniq.view(np.uint8).reshape(-1, DIGEST_BYTES), vectors)  # type: ignore[arg-type]
        except OSError as exc:
            report["cache_note"] = f"not written ({exc})"
            log.warning("text vector cache %s not written: %s", path, exc)
    # the output last, when the cache's arrays are gone: at most two [n, dim] arrays at a time
    # (1M x 384 float32 = 1.4 GiB each)
    out = np.zeros((len(texts), encoder.dim), np.float32)
    if len(rows) == len(texts):  # no empty texts: gather in place
        np.take(vectors, inverse.ravel(), axis=0, out=out)
    else:
        out[rows] = vectors[inverse.ravel()]
    return out, report


def encode_texts(encoder: TextEncoder, texts: Sequence[str], *, cache: str | Path | None = None) -> np.ndarray:
    """The vectors of ``encode_cached`` without its report."""
    return encode_cached(encoder, texts, cache=cache)[0]
