"""Stage 1, snapshot: a time cut of the store's events, with a hash of what lies below it.

Contract: ``cut`` is the newest stored event's timestamp + 1, so the snapshot is every event with
timestamp < cut. ``events_sha256`` hashes those events (rows in store order, their users and
items as external ids, types, values, timestamps): it changes when an event below the cut is
added or removed, and not when events or users appear after the cut. ``catalog_sha256`` hashes
the catalog's item ids (the dataset indexes every catalog item). The store is append-only for
events, so a later stage re-reads exactly this snapshot with ``until=cut`` and can prove it.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np

from winnow.core.errors import DataError
from winnow.data.store import Store


def _used(codes: np.ndarray, names: list[str]) -> tuple[np.ndarray, list[str]]:
    """Codes renumbered densely over the codes in use, and the names of those in use."""
    used, dense = np.unique(codes, return_inverse=True)
    return dense.astype(np.int64), [names[int(c)] for c in used]


def events_digest(store: Store, cut: int) -> tuple[str, int]:
    """(sha256 of the events with timestamp < cut, their count); see the module docstring."""
    log = store.read_events(until=cut)
    h = hashlib.sha256()
    ids: list[list[str]] = []
    for codes, names in ((log.user, log.user_ids), (log.item, log.item_ids), (log.event_type, log.event_types)):
        dense, used = _used(np.asarray(codes), names)
        h.update(dense.tobytes())
        ids.append(used)
    h.update(np.asarray(log.value, np.float64).tobytes())
    h.update(np.asarray(log.timestamp, np.int64).tobytes())
    h.update(json.dumps(ids).encode())
    return h.hexdigest(), len(log)


def catalog_digest(store: Store) -> tuple[str, int]:
    """(sha256 of the sorted catalog item ids, their count)."""
    ids = sorted(str(i) for i in store.read_item_scalars()["item_id"])
    return hashlib.sha256(json.dumps(ids).encode()).hexdigest(), len(ids)


def newest_cut(store: Store) -> int:
    """The newest stored event's timestamp + 1; DataError when the store holds no events."""
    log = store.read_events()
    if len(log) == 0:
        raise DataError("no events in the store: import some before the autopilot can train", source="store")
    return int(np.asarray(log.timestamp).max()) + 1


def take_snapshot(store: Store, cut: int | None = None) -> dict[str, Any]:
    """The snapshot stage's outputs: cut, events / events_sha256, items / catalog_sha256."""
    cut = newest_cut(store) if cut is None else int(cut)
    events_sha, n_events = events_digest(store, cut)
    catalog_sha, n_items = catalog_digest(store)
    return {"cut": cut, "events": n_events, "events_sha256": events_sha, "items": n_items,
            "catalog_sha256": catalog_sha}


def same_data(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether two snapshots hold the same events and catalog."""
    return all(a.get(k) == b.get(k) for k in ("cut", "events_sha256", "catalog_sha256"))
