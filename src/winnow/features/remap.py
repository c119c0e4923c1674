"""When a ranker feature state can be carried to another bundle without replaying events.

The online feature state (``online.OnlineFeatureState``) is indexed by the bundle's dense
user/item indices and reads the bundle's feature catalog and spec. What it holds splits in two:

- event-derived (O(events)): the per-user histories and engagements, the (item, time) and
  (peer code, time) multisets, everyone's event times;
- bundle-derived (O(users + items)): the catalog rows each event was folded with (an item's
  categories, creator, creation time, numeric attributes; a user's peer-group codes) and the
  spec's state inputs (half-life, item attributes, peer groups).

A new bundle can take the event-derived part over (``OnlineFeatureState.fork``) when every
index the old state knows means the same thing in the new bundle: the new id maps start with
the old ones (checked by the caller, which owns the id maps), and ``remap_blocker`` finds the
catalog rows and spec inputs of those indices unchanged. Anything else (a dropped or re-ordered
id, a category re-coded, new peer-group bins, another half-life) changes events already folded
in, and the caller replays the event log instead.
"""

from __future__ import annotations

import numpy as np

from winnow.features.catalog import FeatureCatalog
from winnow.features.spec import FeatureSpec


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and bool(np.array_equal(a, b, equal_nan=a.dtype.kind == "f"))


def remap_blocker(old: FeatureCatalog, old_spec: FeatureSpec, new: FeatureCatalog, new_spec: FeatureSpec) -> str | None:
    """Why a state folded with (``old``, ``old_spec``) cannot serve (``new``, ``new_spec``) as
    is (None: it can). ``new`` must hold ``old``'s item and user rows unchanged at the same
    indices, with any new rows after them. O(users + items) array comparisons."""
    for name in ("half_life_s", "item_numeric", "user_categorical", "numeric_bins"):
        if getattr(old_spec, name) != getattr(new_spec, name):
            return f"feature spec {name} differs"
    n_items, n_users = old.item_cat.shape[0], old.user_groups.shape[0]
    if new.item_cat.shape[0] < n_items or new.user_groups.shape[0] < n_users:
        return (f"the new feature catalog has fewer items or users ({new.item_cat.shape[0]} items, "
                f"{new.user_groups.shape[0]} users; serving: {n_items}, {n_users})")
    oc, nc = old.item_cat, new.item_cat
    end = int(oc.indptr[n_items])
    if not (_same(oc.indptr, nc.indptr[:n_items + 1]) and _same(oc.indices[:end], nc.indices[:end])):
        return "item categories (or their codes) differ"
    for name in ("item_creator", "item_created", "item_numeric"):
        if not _same(getattr(old, name), getattr(new, name)[:n_items]):
            return f"feature catalog {name} differs"
    if not _same(old.user_groups, new.user_groups[:n_users]):
        return "users' peer-group codes differ"
    return None
