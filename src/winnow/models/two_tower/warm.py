"""Warm start of the two-tower: a freshly built (cold-initialised) network takes the previous
model's weights where they still mean the same thing.

- item-id tables (``item.id_emb``, ``user.hist_emb``, ``item_bias``; row = item index + 1): rows
  of items the previous model knew are copied from their old rows, row 0 (unknown item) too;
  new items keep the cold initialisation ``build_net`` gave them;
- category tables (``item.cat_emb``, ``user.interest_emb``): rows matched by category name;
- the hashed user-id table (``user.uid_emb``, same bucket count): the previous table, with the
  bucket of every carried user set from its old bucket (user indices can move between bundles);
- every other tensor (dense layers, hashed attribute / creator tables, age / popularity / time
  embeddings, projections) is copied when its shape is unchanged.

Any other difference (a tensor added or removed, a dense shape changed by ``embedding``,
``hidden``, ``dim``, ``hidden_layers``, the text dimension, a bucket count) leaves the network
cold and returns the reason. Note: a TF-IDF+SVD text encoder is refitted on the grown catalog,
so ``text_proj`` starts from a projection of the previous text space.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from winnow.models.two_tower.towers import TwoTower, user_bucket

ITEM_ROWS = ("item.id_emb.weight", "user.hist_emb.weight", "item_bias")
CATEGORY_ROWS = ("item.cat_emb.weight", "user.interest_emb.weight")
USER_BUCKETS = "user.uid_emb.weight"


@dataclass
class WarmStart:
    """What a two-tower fit continues from: the previous fitted model (``previous``: a
    TwoTowerRecommender) and the (new_rows, old_rows) pairs of its items and users."""

    previous: Any
    items: tuple[np.ndarray, np.ndarray]
    users: tuple[np.ndarray, np.ndarray]


def _rows(new: torch.Tensor, old: torch.Tensor, new_rows: np.ndarray, old_rows: np.ndarray) -> torch.Tensor:
    """``new`` with row 0 and rows ``new_rows`` taken from ``old`` (row 0 and ``old_rows``)."""
    out = new.clone()
    out[0] = old[0]
    if len(new_rows):
        out[torch.from_numpy(np.asarray(new_rows, np.int64))] = old[torch.from_numpy(np.asarray(old_rows, np.int64))]
    return out


def _category_pairs(previous: dict[str, int], current: dict[str, int]) -> tuple[np.ndarray, np.ndarray]:
    """(new rows, old rows) of the category tables (row = category index + 1) by name."""
    common = [c for c in current if c in previous]
    return (np.array([current[c] + 1 for c in common], np.int64),
            np.array([previous[c] + 1 for c in common], np.int64))


def warm_state(net: TwoTower, warm: WarmStart, categories: dict[str, int], user_buckets: int) -> str | None:
    """Load the warm-started weights into ``net`` (built cold by ``build_net`` for the new
    catalog); None when done, else why not (``net`` is then left as built)."""
    prev_net: TwoTower = warm.previous.net_
    cur, old = net.state_dict(), prev_net.state_dict()
    if set(cur) != set(old):
        added, gone = sorted(set(cur) - set(old)), sorted(set(old) - set(cur))
        return f"the network changed (tensors added {added}, removed {gone})"
    item_new, item_old = (np.asarray(a, np.int64) + 1 for a in warm.items)
    cat_new, cat_old = _category_pairs(warm.previous.structure_.categories_, categories)
    out: dict[str, torch.Tensor] = {}
    for key, tensor in cur.items():
        prev = old[key]
        if key in ITEM_ROWS or key in CATEGORY_ROWS:
            if tensor.shape[1:] != prev.shape[1:]:
                return f"{key} rows changed shape {tuple(prev.shape[1:])} -> {tuple(tensor.shape[1:])}"
            pairs = (item_new, item_old) if key in ITEM_ROWS else (cat_new, cat_old)
            out[key] = _rows(tensor, prev, *pairs)
        elif tensor.shape != prev.shape:
            return f"{key} changed shape {tuple(prev.shape)} -> {tuple(tensor.shape)}"
        elif key == USER_BUCKETS and len(warm.users[0]):
            out[key] = prev.clone()
            new_b = torch.from_numpy(user_bucket(warm.users[0], user_buckets))
            old_b = torch.from_numpy(user_bucket(warm.users[1], user_buckets))
            out[key][new_b] = prev[old_b]
        else:
            out[key] = prev.clone()
    net.load_state_dict(out)
    return None
