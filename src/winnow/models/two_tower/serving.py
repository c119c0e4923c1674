"""Serving side of the two-tower model and the cold-start sources of the retrieval stage.

``TwoTowerServing`` holds, for one bundle: the model, an ANN index over its item vectors (ids =
item indices; computed once per bundle) and an exact index over the content-only vectors.
``add_items`` puts items created after training into both indices from their content alone
(the item tower with the "unknown id" input), so they are recommendable at once. With
``item_bias`` the ANN index holds ``model.index_vectors()`` (the item bias as a last column) and
is searched with ``model.index_query(vector)``; it then needs the inner-product metric.

Sources (``[[pipeline.sources]]`` kinds):
- ``two_tower``: nearest items to the request's query vector (history, attributes, declared
  interests, hour/day of the request, optional ``context.query`` text).
- ``content``: nearest items in content space to the user's recent items and declared interest
  items (for users with category interests only: the query vector against the content index).
- ``segment_popular``: what users with the same attributes engaged with (SegmentPopularity).
Every source returns nothing (never raises) for a request it cannot serve.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from winnow.core.errors import ConfigError
from winnow.models.coldstart import SegmentPopularity

if TYPE_CHECKING:  # torch loads with the first TwoTowerServing: segment files need no neural extra
    from winnow.models.two_tower.model import TwoTowerRecommender

EMPTY_I = np.empty(0, np.int32)
EMPTY_S = np.empty(0, np.float32)


def save_segment(segment: SegmentPopularity, directory: Path) -> None:
    """``segment.json`` (vocabulary, l2) + ``segment.npz`` (weights)."""
    directory.mkdir(parents=True, exist_ok=True)
    np.savez(directory / "segment.npz", weights=segment.weights_)
    (directory / "segment.json").write_text(json.dumps({"l2": segment.l2, "first": segment.first,
                                                        "vocab": segment.vocab_}), encoding="utf-8")


def load_segment(directory: Path) -> SegmentPopularity:
    meta = json.loads((directory / "segment.json").read_text(encoding="utf-8"))
    seg = SegmentPopularity(l2=float(meta["l2"]), first=int(meta["first"]))
    seg.vocab_ = {str(k): int(v) for k, v in meta["vocab"].items()}
    with np.load(directory / "segment.npz", allow_pickle=False) as z:
        seg.weights_ = z["weights"]
    seg.n_items_ = seg.weights_.shape[1]
    return seg


class TwoTowerServing:
    """Per-bundle two-tower state for requests (one torch thread)."""

    def __init__(self, model: TwoTowerRecommender, index: Any, content_index: Any) -> None:
        import torch

        torch.set_num_threads(1)
        self.model = model
        self.index = index
        self.content_index = content_index
        self.content_vectors: dict[int, np.ndarray] = {}
        self._lock = threading.Lock()

    @classmethod
    def build(cls, model: TwoTowerRecommender, index_config: Any) -> TwoTowerServing:
        from winnow.index import build_index

        n = model.n_items_
        ids = np.arange(n, dtype=np.int64)
        if model.config.item_bias and index_config.metric != "ip":
            raise ConfigError(f"[index] metric = {index_config.metric!r}: a two-tower model with item_bias "
                              "needs metric = 'ip' (the bias is an extra inner-product coordinate)")
        vectors = model.index_vectors()
        index = build_index(index_config, vectors.shape[1], n, threads=1)
        index.upsert(ids, vectors)
        content = build_index(index_config.model_copy(update={"backend": "exact"}),
                              model.content_vectors_.shape[1], n, threads=1)
        content.upsert(ids, model.content_vectors_)
        if model.config.text_backend == "minilm" and model.table_.text.shape[1]:
            model.encode_query("warm up")  # load the sentence encoder now, not on the first new item
        return cls(model, index, content)

    def content_vector(self, item: int) -> np.ndarray | None:
        if item < self.model.n_items_:
            return self.model.content_vectors_[item]
        return self.content_vectors.get(item)

    def add_items(self, indices: list[int], items: pd.DataFrame) -> float:
        """Index catalog items created after training (row i of ``items`` is index indices[i])
        from content only; returns the seconds it took."""
        t0 = time.perf_counter()
        m = self.model
        new = [(i, r) for i, (_, r) in zip(indices, items.iterrows(), strict=True) if i >= m.n_items_]
        if not new:
            return 0.0
        frame = pd.DataFrame([r for _, r in new]).reset_index(drop=True)
        import torch

        from winnow.models.content import encode_texts, item_texts, make_text_encoder
        from winnow.models.two_tower.train import item_vectors

        text_dim = m.table_.text.shape[1]
        if text_dim == 0:
            text = np.zeros((len(frame), 0), np.float32)
        else:
            enc = m.text_encoder_ if m.text_encoder_ is not None else make_text_encoder("minilm")
            text = encode_texts(enc, item_texts(frame))
        content = m.structure_.transform(frame, text)
        cats = content.categories
        cat_rows = np.zeros((len(frame), m.table_.cats.shape[1]), np.int64)
        for r in range(len(frame)):
            c = cats.indices[cats.indptr[r]:cats.indptr[r + 1]][: cat_rows.shape[1]] + 1
            cat_rows[r, :len(c)] = c
        tensors = {"cats": torch.from_numpy(cat_rows), "creator": torch.from_numpy(content.creator),
                   "age": torch.from_numpy(content.age), "pop": torch.zeros(len(frame), dtype=torch.int64),
                   "text": torch.from_numpy(content.text)}
        vecs = item_vectors(m.net_, tensors, content_only=True)
        ids = np.asarray([i for i, _ in new], np.int64)
        rows = np.stack([m.content_index_row(v) for v in vecs]).astype(np.float32)
        with self._lock:
            self.index.upsert(ids, rows)
            self.content_index.upsert(ids, vecs)
            for i, v in zip(ids.tolist(), vecs, strict=True):
                self.content_vectors[i] = v
        return time.perf_counter() - t0

    def query_vector(self, request: Any) -> np.ndarray:
        """The user tower's vector for one pipeline Request (see module docstring)."""
        user = request.user
        m = self.model
        hist = [int(i) for i in user.recent_items[::-1] if 0 <= i < m.n_items_]  # oldest first
        interest_items = [int(i) for i in getattr(user, "interest_items", []) if 0 <= i < m.n_items_]
        uidx = getattr(user, "user_index", -1)
        t = time.gmtime(request.now)
        query = request.context.get("query") if isinstance(request.context, dict) else None
        qvec = m.encode_query(str(query)) if query else None
        return m.user_vector(history=interest_items + hist, attributes=getattr(user, "attributes", {}),
                             interests=getattr(user, "interests", []),
                             user=uidx if 0 <= uidx < m.n_users_ else None,
                             hour=t.tm_hour, dow=t.tm_wday, query=qvec)


class TwoTowerSource:
    kind = "two_tower"

    def __init__(self, name: str, serving: TwoTowerServing) -> None:
        self.name, self.serving = name, serving

    def candidates(self, request: Any, k: int) -> tuple[np.ndarray, np.ndarray]:
        vec = self.serving.model.index_query(self.serving.query_vector(request))
        ids, scores = self.serving.index.search(vec[None, :].astype(np.float32), k)
        ok = ids[0] >= 0
        return ids[0][ok].astype(np.int32), scores[0][ok].astype(np.float32)


class ContentSource:
    kind = "content"

    def __init__(self, name: str, serving: TwoTowerServing, recent: int = 20) -> None:
        self.name, self.serving, self.recent = name, serving, recent

    def candidates(self, request: Any, k: int) -> tuple[np.ndarray, np.ndarray]:
        user = request.user
        items = list(getattr(user, "interest_items", [])) + [int(i) for i in user.recent_items[: self.recent]]
        vecs = [v for v in (self.serving.content_vector(int(i)) for i in items) if v is not None]
        if vecs:
            q = np.mean(vecs, axis=0)
        elif getattr(user, "interests", None) or getattr(user, "attributes", None):
            q = self.serving.query_vector(request)
        else:
            return EMPTY_I, EMPTY_S
        q = (q / max(float(np.linalg.norm(q)), 1e-12)).astype(np.float32)
        exclude = np.asarray(items, np.int64) if items else None
        ids, scores = self.serving.content_index.search(q[None, :], k, exclude=exclude)
        ok = ids[0] >= 0
        return ids[0][ok].astype(np.int32), scores[0][ok].astype(np.float32)


class SegmentSource:
    kind = "segment_popular"

    def __init__(self, name: str, segment: SegmentPopularity, catalog: Any) -> None:
        self.name, self.segment, self.catalog = name, segment, catalog

    def candidates(self, request: Any, k: int) -> tuple[np.ndarray, np.ndarray]:
        scores = self.segment.score([getattr(request.user, "attributes", {}) or {}])[0]
        n = min(len(scores), len(self.catalog.available))
        scores = np.where(self.catalog.available[:n], scores[:n], -np.inf)
        kk = min(k, int(np.isfinite(scores).sum()))
        if kk <= 0:
            return EMPTY_I, EMPTY_S
        part = np.argpartition(-scores, kk - 1)[:kk]
        order = part[np.argsort(-scores[part], kind="stable")]
        return order.astype(np.int32), scores[order].astype(np.float32)
