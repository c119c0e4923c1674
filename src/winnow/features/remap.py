"""When a ranker feature state can be carried to another bundle without replaying events, and
what must be corrected when it is.

The online feature state (``online.OnlineFeatureState``) is indexed by the bundle's dense
user/item indices and reads the bundle's feature catalog and spec. What it holds splits in three:

- event-derived, catalog-free (O(events)): the per-user event times and items, the (item, time)
  and everyone's event-time multisets, the (item, user) reverse index, per-item totals;
- folded with an item's catalog row (its categories, creator, creation time, numeric
  attributes): each user's category and creator engagement, item-age and attribute sums;
- folded with a user's peer-group codes (the spec's categorical vocabularies and numeric bins):
  the (peer code, time) multiset and the per-item counts by peer code.

A new bundle can take the state over (``OnlineFeatureState.fork``) when every index the old
state knows means the same entity in the new bundle: the new id maps start with the old ones
(checked by the caller, which owns the id maps), and the spec's state inputs that every event
was folded with (half-life, the item attribute names) are equal (``remap_blocker``). Item rows
that differ (``changed_items``: a price or category update between two trainings, re-coded
categories) are corrected by re-folding only the users who have an event of such an item
(found through the reverse index); moved peer codes (``peers_moved``: new bins, a changed
vocabulary, a user whose attribute changed) rebuild the peer columns from the per-user state.
Anything else (a dropped or re-ordered id, another half-life or attribute list) changes every
event already folded in, and the caller replays the event log instead.
"""

from __future__ import annotations

import numpy as np

from winnow.features.catalog import FeatureCatalog
from winnow.features.spec import FeatureSpec


def _row_differs(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """bool [n]: rows of ``a`` [n, ...] that differ from ``b``'s (NaN equals NaN)."""
    same = (a == b) | ((a != a) & (b != b)) if a.dtype.kind == "f" else a == b
    return ~same.reshape(len(a), -1).all(axis=1) if a.ndim > 1 else ~same


def remap_blocker(old: FeatureCatalog, old_spec: FeatureSpec, new: FeatureCatalog, new_spec: FeatureSpec) -> str | None:
    """Why a state folded with (``old``, ``old_spec``) cannot be forked to (``new``,
    ``new_spec``) at all (None: it can, with the corrections ``changed_items`` and
    ``peers_moved`` name). ``new`` must have at least ``old``'s item and user rows."""
    for name in ("half_life_s", "item_numeric"):
        if getattr(old_spec, name) != getattr(new_spec, name):
            return f"feature spec {name} differs"
    n_items, n_users = old.item_cat.shape[0], old.user_groups.shape[0]
    if new.item_cat.shape[0] < n_items or new.user_groups.shape[0] < n_users:
        return (f"the new feature catalog has fewer items or users ({new.item_cat.shape[0]} items, "
                f"{new.user_groups.shape[0]} users; serving: {n_items}, {n_users})")
    return None


def changed_items(old: FeatureCatalog, new: FeatureCatalog) -> np.ndarray:
    """int64 [m], ascending: the indices below ``old``'s item count whose feature-catalog row
    (category codes, creator, creation time, numeric attributes) differs in ``new``.
    O(items + category entries), vectorised."""
    n = old.item_cat.shape[0]
    oc, nc = old.item_cat, new.item_cat
    olen, nlen = np.diff(oc.indptr), np.diff(nc.indptr[:n + 1])
    differs = olen != nlen
    if not differs.any() and oc.indptr[0] == nc.indptr[0]:  # the usual case: one comparison of the codes
        end = int(oc.indptr[n])
        bad = np.flatnonzero(oc.indices[:end] != nc.indices[:end])
        differs[np.searchsorted(oc.indptr, bad, side="right") - 1] = True
        same_len = np.empty(0, np.int64)
    else:
        same_len = np.flatnonzero(~differs & (olen > 0))
    if len(same_len):  # compare the category codes of rows of equal length, entry by entry
        lens = olen[same_len]
        offs = np.arange(int(lens.sum())) - np.repeat(np.cumsum(lens) - lens, lens)
        a = oc.indices[np.repeat(oc.indptr[same_len], lens) + offs]
        b = nc.indices[np.repeat(nc.indptr[same_len], lens) + offs]
        mismatch = np.bincount(np.repeat(np.arange(len(same_len)), lens), weights=a != b, minlength=len(same_len))
        differs[same_len[mismatch > 0]] = True
    for name in ("item_creator", "item_created", "item_numeric"):
        differs |= _row_differs(getattr(old, name), getattr(new, name)[:n])
    return np.flatnonzero(differs).astype(np.int64)


def peers_moved(old: FeatureCatalog, old_spec: FeatureSpec, new: FeatureCatalog, new_spec: FeatureSpec) -> bool:
    """True when some event folded with ``old`` would get another peer code under ``new``: the
    peer groups, a vocabulary or the numeric bins differ, or a known user's codes do."""
    if old_spec.user_categorical != new_spec.user_categorical or old_spec.numeric_bins != new_spec.numeric_bins:
        return True
    n_users = old.user_groups.shape[0]
    return (old.user_groups.shape[1:] != new.user_groups.shape[1:]
            or bool(_row_differs(old.user_groups, new.user_groups[:n_users]).any()))
