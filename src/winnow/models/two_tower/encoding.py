"""Model-independent encoders of the two-tower model: user attribute tokens, padded id rows,
the cold-item blend of content and collaborative vectors, and the category centroids."""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp


def attribute_tokens(attrs: dict[str, Any]) -> list[str]:
    """Hashable tokens of a user's attributes: ``k=v`` for strings (plus a 2-char prefix token,
    e.g. zip regions), log-scale bins ``k~b`` for numbers (ages 18-24 share a bin)."""
    out = []
    for key, value in sorted(attrs.items()):
        if isinstance(value, bool) or value is None:
            out.append(f"{key}={value}")
        elif isinstance(value, (int, float)):
            out.append(f"{key}~{int(np.floor(np.log2(1.0 + abs(float(value))) * 3))}")
        else:
            text = str(value)
            out.append(f"{key}={text}")
            if len(text) > 2:
                out.append(f"{key}[:2]={text[:2]}")
    return out


def pad_rows(rows: list[list[int]], width: int) -> np.ndarray:
    """int64 [len(rows), width]: each row's ids left-aligned, truncated to ``width``, 0-padded."""
    out = np.zeros((len(rows), width), np.int64)
    for r, vals in enumerate(rows):
        vals = vals[:width]
        out[r, :len(vals)] = vals
    return out


def blend_item_vectors(collab: np.ndarray, content: np.ndarray, counts: np.ndarray, *, k: float) -> np.ndarray:
    """w * collab + (1 - w) * content with w = n / (n + k) per item, rows re-normalised.

    collab, content float32 [n, d]; counts int [n] training events per item. An item with 0
    events is exactly its content vector; as events accumulate it moves to the collaborative one.
    """
    w = (counts / (counts + k)).astype(np.float32)[:, None]
    v = w * collab + (1.0 - w) * content
    return (v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)).astype(np.float32)


def category_centroids(cats: np.ndarray, counts: np.ndarray, vectors: np.ndarray, n_categories: int) -> np.ndarray:
    """float32 [max(1, n_categories), dim]: each category's centroid in retrieval space, unit norm.

    cats int [n_items, width] category ids + 1 per item (0 pads); counts [n_items] training events
    (item weight log1p(count) + 1); vectors float32 [n_items, dim]. A category without items is 0."""
    rows = np.repeat(np.arange(len(cats)), cats.shape[1])
    ok = cats.ravel() > 0
    pop_w = np.log1p(counts.astype(np.float64)) + 1.0
    m = sp.csr_matrix((pop_w[rows[ok]], (cats.ravel()[ok] - 1, rows[ok])), shape=(max(1, n_categories), len(cats)))
    cent = np.asarray(m @ vectors, dtype=np.float32)
    return cent / np.maximum(np.linalg.norm(cent, axis=1, keepdims=True), 1e-12)
