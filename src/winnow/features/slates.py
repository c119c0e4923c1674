"""Logged slates flattened into feature rows: the one reader of the impression log's slates for
ranker features, below both training and evaluation.

Two callers turn logged slates into ranker feature rows: the ranker's impression training
lists (winnow.features.impression_lists: the rows labelled by what followed) and the live drift
monitor's ranker-feature profile (winnow.evaluation.drift_features: the rows of a sample of the
slates a bundle served). Both need the same reading of a slate -- who, when, which device, which
items in which shown position, each item's logged source scores -- so it lives here, in the
features layer both may import (serving may import evaluation, never training).

``read_slates(impressions)``: ``Store.read_impressions`` records (or ``Store.sample_impressions``)
-> ``Slates``. A slate entry's ``src`` is {pipeline source name: [score, 0-based rank]} (the
service logs it with every shown item); a source that did not propose the item is NaN, as at
serving time. The logged ``position`` is used when present (>= 0), else the item's place in the
slate. The device comes from the slate's logged context.

``slate_labels(shown, events, ...)``: the graded label of each shown item -- 2 a purchase type,
1 a click type, 0 nothing -- where an event counts for the user's most recent showing of that
item at or before it, at most ``window_s`` earlier (the attribution of the ranker's impression
lists and of the service's Thompson statistics).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

PURCHASE, CLICK = 2.0, 1.0  # graded labels of a shown item (slate_labels)


@dataclass(frozen=True)
class Slates:
    """Slates flattened, external ids. Per slate [S]: ``head_user`` (str), ``head_t`` int64 (unix
    s), ``head_device`` (str or None). Per shown item [n], in slate order: ``slate`` int64 (index
    into the heads, non-decreasing), ``user`` / ``item`` (str), ``t`` int64, ``position`` int64;
    ``src_score`` / ``src_rank``: source name -> float64 [n], NaN where the source did not
    propose the item (rank also NaN when logged < 0)."""

    head_user: list[str]
    head_t: np.ndarray
    head_device: list[str | None]
    slate: np.ndarray
    user: list[str]
    item: list[str]
    t: np.ndarray
    position: np.ndarray
    src_score: dict[str, np.ndarray]
    src_rank: dict[str, np.ndarray]

    def __len__(self) -> int:
        return len(self.item)


def read_slates(impressions: Iterable[dict[str, Any]]) -> Slates:
    """Flatten logged slates (module docstring)."""
    heads: list[tuple[str, int, str | None]] = []
    users: list[str] = []
    items: list[str] = []
    ts: list[int] = []
    slate: list[int] = []
    shown_at: list[int] = []
    src: dict[str, list[tuple[int, float, float]]] = {}
    for imp in impressions:
        ctx = imp["context"] if isinstance(imp.get("context"), dict) else {}
        heads.append((str(imp["user_id"]), int(imp["timestamp"]), ctx.get("device")))
        for place, s in enumerate(imp.get("items") or []):
            row = len(items)
            logged = s.get("position")
            shown_at.append(int(logged) if isinstance(logged, (int, float)) and logged >= 0 else place)
            users.append(heads[-1][0])
            items.append(str(s.get("item_id")))
            ts.append(heads[-1][1])
            slate.append(len(heads) - 1)
            for name, val in (s.get("src") or {}).items():
                src.setdefault(str(name), []).append((row, float(val[0]), float(val[1])))
    n = len(items)
    scores = {name: np.full(n, np.nan) for name in src}
    ranks = {name: np.full(n, np.nan) for name in src}
    for name, vals in src.items():
        arr = np.asarray(vals, np.float64)
        r = arr[:, 0].astype(np.int64)
        scores[name][r], ranks[name][r] = arr[:, 1], np.where(arr[:, 2] >= 0, arr[:, 2], np.nan)
    return Slates(head_user=[h[0] for h in heads], head_t=np.asarray([h[1] for h in heads], np.int64),
                  head_device=[h[2] for h in heads], slate=np.asarray(slate, np.int64), user=users,
                  item=items, t=np.asarray(ts, np.int64), position=np.asarray(shown_at, np.int64),
                  src_score=scores, src_rank=ranks)


def slate_labels(shown: pd.DataFrame, events: pd.DataFrame, *, click_types: Sequence[str],
                 purchase_types: Sequence[str], window_s: int) -> np.ndarray:
    """float32 [len(shown)] graded label of each shown row (columns user_id, item_id, timestamp,
    row), by most-recent-showing attribution within ``window_s``."""
    label = np.zeros(len(shown), np.float32)
    grade = {t: CLICK for t in click_types} | {t: PURCHASE for t in purchase_types}
    ev = events[events["event_type"].isin(list(grade))]
    if not len(ev) or not len(shown):
        return label
    ev = pd.DataFrame({"user_id": ev["user_id"].astype(str).to_numpy(),
                       "item_id": ev["item_id"].astype(str).to_numpy(),
                       "timestamp": ev["timestamp"].astype(np.int64).to_numpy(),
                       "grade": ev["event_type"].map(grade).to_numpy(np.float32)})
    left = ev.sort_values("timestamp", kind="stable")
    right = shown.sort_values("timestamp", kind="stable")
    hit = pd.merge_asof(left, right, on="timestamp", by=["user_id", "item_id"],
                        direction="backward", tolerance=int(window_s))
    hit = hit.dropna(subset=["row"])
    if len(hit):
        np.maximum.at(label, hit["row"].to_numpy(np.int64), hit["grade"].to_numpy(np.float32))
    return label
