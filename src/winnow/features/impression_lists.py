"""Ranker training lists from the impression log: what was shown, and what the user did next.

A logged slate (``Store.read_impressions``: request_id, user_id, timestamp, context, items) is
one list; its rows are the shown items. Label of a shown item (graded relevance):

    2  the user logged a ``purchase_types`` event on it,
    1  a ``click_types`` event (and no purchase),
    0  shown, nothing followed,

where an event counts for the user's most recent showing of that item at or before it, at
most ``window_s`` seconds earlier -- the attribution the service's Thompson statistics use
(``serving.item_stats``), so "clicked" means the same thing in both places.

Slates are read by winnow.features.slates (the one reader, shared with the drift monitor's
ranker-feature profile). Source features are the ones the service logged with the slate: each shown item's ``src``
entry {pipeline source name: [score, 0-based rank]} (``pipeline.Pipeline`` puts it on every
``SlateItem``; the service writes it into the impression). A source that did not propose the
item is NaN, exactly as at serving time. Every other feature is computed point-in-time from the
event log as of the impression's timestamp (``features.offline_features``), so nothing the user
did at or after the showing leaks in. The device comes from the slate's logged context.

Users and items the training data's id maps do not know are dropped (rows; a list whose user is
unknown, or whose rows are all gone, disappears); lists with no positive are dropped (no
lambdarank gradient). Impressions logged before the service logged ``src`` simply have NaN
source features.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from winnow.core.ids import IdMap
from winnow.features.spec import FeatureSpec
from winnow.features.offline import Lists
from winnow.features.slates import CLICK, PURCHASE, read_slates, slate_labels

__all__ = ["CLICK", "PURCHASE", "ImpressionLists", "impression_lists"]


@dataclass
class ImpressionLists:
    """Labelled slates, dense indices. user / t / device: [L] per list (device: str or None);
    row_list int64 [n] (contiguous, sorted), row_item int64 [n], label float32 [n];
    position int64 [n]: 0-based position the item was shown at (the logged ``position``, else
    its place in the slate); src_score / src_rank: pipeline source name -> float64 [n], NaN
    where not proposed. Rows of a list are in shown order (``shuffled`` mixes them)."""

    user: np.ndarray
    t: np.ndarray
    device: list[str | None]
    row_list: np.ndarray
    row_item: np.ndarray
    label: np.ndarray
    src_score: dict[str, np.ndarray]
    src_rank: dict[str, np.ndarray]
    position: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    shown: int = 0      # shown items read (before any row was dropped)
    slates: int = 0     # slates read

    def __len__(self) -> int:
        return len(self.user)

    def shuffled(self, seed: int) -> ImpressionLists:
        """The same lists with each list's rows in a seeded random order. The ranker trains on
        this: in shown order, the tied scores of a young ranker (a few coarse trees) keep the
        rows' order, which predicts clicks through position bias alone, and early stopping on
        validation NDCG then picks a 1-2 tree ranker (measured in the simulator:
        winnow.simulation.posbias)."""
        order = np.lexsort((np.random.default_rng(seed).random(len(self.row_list)), self.row_list))
        return replace(self, row_item=self.row_item[order], label=self.label[order],
                       position=self.position[order],
                       src_score={k: v[order] for k, v in self.src_score.items()},
                       src_rank={k: v[order] for k, v in self.src_rank.items()})

    def feature_lists(self, spec: FeatureSpec) -> Lists:
        """The lists to featurise with ``spec`` (``offline_features``): the logged source scores
        and ranks of the spec's sources (NaN for a spec source these slates did not run), the
        device codes of the slates' logged devices."""
        nan = np.full(len(self.row_list), np.nan)
        return Lists(user=self.user, t=self.t, row_list=self.row_list, row_item=self.row_item,
                     src_score={s: self.src_score.get(s, nan) for s in spec.sources},
                     src_rank={s: self.src_rank.get(s, nan) for s in spec.sources},
                     device=np.asarray([spec.device_code(d) for d in self.device], np.float64))

    def subset(self, lists: np.ndarray) -> ImpressionLists:
        """The lists at sorted positions ``lists`` (rows renumbered, still contiguous)."""
        lists = np.asarray(lists, np.int64)
        keep = np.zeros(len(self.user), bool)
        keep[lists] = True
        rows = keep[self.row_list]
        renumber = np.cumsum(keep) - 1
        return replace(self, user=self.user[lists], t=self.t[lists],
                       device=[self.device[j] for j in lists.tolist()],
                       row_list=renumber[self.row_list[rows]], row_item=self.row_item[rows],
                       label=self.label[rows], position=self.position[rows],
                       src_score={k: v[rows] for k, v in self.src_score.items()},
                       src_rank={k: v[rows] for k, v in self.src_rank.items()})


def impression_lists(impressions: Sequence[dict[str, Any]], events: pd.DataFrame, *,
                     user_ids: IdMap, item_ids: IdMap, click_types: Sequence[str],
                     purchase_types: Sequence[str], window_s: int) -> ImpressionLists:
    """Labelled lists from logged slates (see module docstring).

    Args:
        impressions: ``Store.read_impressions`` records.
        events: columns user_id, item_id, event_type, timestamp (e.g. ``Store.read_feedback_events``
            for the click and purchase types); other types are ignored.
        user_ids / item_ids: the training data's id maps (external -> dense).
        click_types / purchase_types: event types graded 1 / 2.
        window_s: attribution window in seconds (>= 0).
    """
    flat = read_slates(impressions)
    n = len(flat)
    shown = pd.DataFrame({"user_id": flat.user, "item_id": flat.item, "timestamp": flat.t,
                          "row": np.arange(n, dtype=np.float64)})
    label = slate_labels(shown, events, click_types=click_types, purchase_types=purchase_types,
                    window_s=window_s)
    u = user_ids.encode(flat.user, missing=-1).astype(np.int64)
    it = item_ids.encode(flat.item, missing=-1).astype(np.int64)
    sl = flat.slate
    n_slates = len(flat.head_user)
    ok = (u >= 0) & (it >= 0)
    positive = np.bincount(sl[ok], weights=label[ok], minlength=n_slates) > 0
    keep = ok & positive[sl]
    kept_slates = np.flatnonzero(positive)
    new_list = np.full(n_slates, -1, np.int64)
    new_list[kept_slates] = np.arange(len(kept_slates))
    rows = np.flatnonzero(keep)
    scores, ranks = flat.src_score, flat.src_rank
    row_list = new_list[sl[rows]]  # sorted: slates were read in order
    first = np.searchsorted(row_list, np.arange(len(kept_slates)))
    user_of = u[rows][first]  # every row of a slate has its user
    return ImpressionLists(
        user=user_of,
        t=flat.head_t[kept_slates],
        device=[flat.head_device[s] for s in kept_slates],
        row_list=row_list, row_item=it[rows],
        label=label[rows], position=flat.position[rows],
        src_score={k: v[rows] for k, v in scores.items()},
        src_rank={k: v[rows] for k, v in ranks.items()}, shown=n, slates=n_slates)
