"""Model-independent encoders of the two-tower model: user attribute tokens, padded id rows, and
the cold-item blend of content and collaborative vectors."""

from __future__ import annotations

from typing import Any

import numpy as np


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
