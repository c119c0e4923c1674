"""Serving side of the two-tower model (the ``two_tower`` and ``content`` sources of
winnow.components.two_tower search its indices).

``TwoTowerServing`` holds, for one bundle: the model, an ANN index over its item vectors (ids =
item indices; computed once per bundle) and an exact index over the content-only vectors.
``add_items`` puts items created after training into both indices from their content alone
(the item tower with the "unknown id" input), so they are recommendable at once. With
``item_bias`` the ANN index holds ``model.index_vectors()`` (the item bias as a last column) and
is searched with ``model.index_query(vector)``; it then needs the inner-product metric.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np
import pandas as pd
import torch

from winnow.core.errors import ConfigError
from winnow.models.two_tower.model import TwoTowerRecommender
from winnow.models.two_tower.train import item_vectors


class TwoTowerServing:
    """Per-bundle two-tower state for requests (one torch thread)."""

    def __init__(self, model: TwoTowerRecommender, index: Any, content_index: Any) -> None:
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
        from winnow.models.content import item_texts
        from winnow.models.text_cache import encode_texts

        text_dim = m.table_.text.shape[1]
        if text_dim == 0:
            text = np.zeros((len(frame), 0), np.float32)
        else:
            enc = m.text_encoder_ if m.text_encoder_ is not None else m.text_encoder()
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
