"""Bridge from stored (or in-memory) data to ``winnow.data.interactions.Dataset`` for training.

Weights: ``weight = type_weight * transform(value)`` with ``type_weight = events.weights[type]``
(or ``events.default_weight`` for unlisted types; None -> DataError) and ``transform`` from
``events.value_transform[type]``: "none" -> 1 (value ignored), "linear" -> value,
"log1p" -> log1p(max(value, 0)); a missing value (NaN) counts as 1 whatever the transform.
Events whose weight is <= 0 (e.g. ``skip``, weight 0) are dropped from ``Interactions``: it
holds positive signal only (negative feedback stays in the store for rankers and filters).

Indices: every catalog item gets an item index even without events (every catalog item is a
candidate), and every user in the users table or the events gets a user index.
``Dataset.items`` / ``Dataset.users`` have one row per index (defaults for ids that have no
catalog / profile row).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from winnow.core.config import EventsConfig, ValueTransform
from winnow.core.errors import DataError
from winnow.core.ids import IdMap
from winnow.data.interactions import Dataset, Interactions
from winnow.data.schema import ITEM_COLUMNS, USER_COLUMNS
from winnow.data.store import Store
from winnow.data.validate import normalize_events, normalize_items, normalize_users


def type_weights(event_types: list[str], config: EventsConfig) -> tuple[np.ndarray, list[ValueTransform]]:
    """float64 [n_types] weight per type name and the transform name per type."""
    weights, transforms = [], []
    for name in event_types:
        w = config.weights.get(name, config.default_weight)
        if w is None:
            raise DataError(f"event type has no weight and [events] default_weight is not set "
                            f"(known: {sorted(config.weights)})", source="events", field="event_type",
                            value=name)
        weights.append(float(w))
        transforms.append(config.value_transform.get(name, "none"))
    return np.asarray(weights, dtype=np.float64), transforms


def event_weights(type_codes: np.ndarray, value: np.ndarray, event_types: list[str],
                  config: EventsConfig) -> np.ndarray:
    """float32 [n] weights for events given as codes into ``event_types`` and values (NaN ok)."""
    base, transforms = type_weights(event_types, config)
    weight = base[type_codes].copy()
    for code, transform in enumerate(transforms):
        if transform == "none":
            continue
        rows = type_codes == code
        v = value[rows]
        t = v if transform == "linear" else np.log1p(np.maximum(v, 0.0))
        weight[rows] *= np.where(np.isnan(v), 1.0, t)
    return weight.astype(np.float32)


def _aligned(frame: pd.DataFrame, key: str, ids: list[str], columns: tuple[str, ...],
             defaults: dict[str, object]) -> pd.DataFrame:
    """One row per id in ``ids`` order (vectorised reindex); ids absent from ``frame`` get
    ``defaults`` (callables build a fresh list/dict per row)."""
    index = pd.Index(ids, name=key, dtype=object)
    if len(frame):
        body = frame.drop_duplicates(key, keep="last").set_index(key).reindex(index)
        known = index.isin(frame[key].astype(object))
    else:
        body = pd.DataFrame(index=index, columns=[c for c in columns if c != key])
        known = np.zeros(len(ids), dtype=bool)
    absent = np.flatnonzero(~known)
    for col, default in defaults.items():
        values = body[col].astype(object).to_numpy().copy()
        for i in absent:
            values[i] = default() if callable(default) else default
        body[col] = values
    out = body.reset_index()[list(columns)]
    out["created_at"] = pd.array(out["created_at"].tolist(), dtype="Int64")
    return out


_ITEM_DEFAULTS: dict[str, object] = {"title": "", "text": "", "categories": list, "creator": "",
                                     "created_at": pd.NA, "available": True, "sponsored": False,
                                     "attributes": dict}
_USER_DEFAULTS: dict[str, object] = {"created_at": pd.NA, "attributes": dict, "interests": list}


def _build(name: str, user: np.ndarray, item: np.ndarray, tcode: np.ndarray, value: np.ndarray,
           ts: np.ndarray, *, event_types: list[str], user_map: IdMap, item_map: IdMap,
           items: pd.DataFrame, users: pd.DataFrame, config: EventsConfig) -> Dataset:
    weight = event_weights(tcode, value, event_types, config)
    keep = weight > 0
    inter = Interactions.from_arrays(user[keep], item[keep], weight=weight[keep], timestamp=ts[keep],
                                     n_users=len(user_map), n_items=len(item_map))
    return Dataset(name=name, interactions=inter, user_ids=user_map, item_ids=item_map,
                   items=_aligned(items, "item_id", item_map.ids, ITEM_COLUMNS, _ITEM_DEFAULTS),
                   users=_aligned(users, "user_id", user_map.ids, USER_COLUMNS, _USER_DEFAULTS))


def load_dataset(store: Store, events_config: EventsConfig, *, name: str,
                 since: int | None = None, until: int | None = None) -> Dataset:
    """Dataset of all stored events (since <= timestamp < until), catalog and users.

    Index order is the store's key order (``EventLog.user_ids`` / ``item_ids``), which already
    contains catalog items and profiled users without events.
    """
    log = store.read_events(since=since, until=until)
    items, users = store.read_items(), store.read_users()
    item_map = IdMap("item", log.item_ids)
    for ext in items["item_id"]:
        item_map.add(ext)
    user_map = IdMap("user", log.user_ids)
    for ext in users["user_id"]:
        user_map.add(ext)
    return _build(name, log.user, log.item, log.event_type.astype(np.int64), log.value, log.timestamp,
                  event_types=log.event_types, user_map=user_map, item_map=item_map,
                  items=items, users=users, config=events_config)


def dataset_from_frames(events: pd.DataFrame, items: pd.DataFrame | None, users: pd.DataFrame | None,
                        events_config: EventsConfig, name: str) -> Dataset:
    """The same as load_dataset, from frames (validated; raises DataError on a bad row).

    Index order: catalog items in frame order, then items seen only in events (first seen);
    users in the users frame order, then users seen only in events (first seen).
    """
    ev = normalize_events(events, source=f"{name}:events")
    it = normalize_items(items, source=f"{name}:items") if items is not None else \
        pd.DataFrame(columns=list(ITEM_COLUMNS))
    us = normalize_users(users, source=f"{name}:users") if users is not None else \
        pd.DataFrame(columns=list(USER_COLUMNS))
    item_map = IdMap("item")
    for ext in it["item_id"]:
        item_map.add(ext)
    user_map = IdMap("user")
    for ext in us["user_id"]:
        user_map.add(ext)
    item = item_map.encode(ev["item_id"].tolist(), add=True)
    user = user_map.encode(ev["user_id"].tolist(), add=True)
    tcode, types = pd.factorize(ev["event_type"], sort=False)
    return _build(name, user, item, np.asarray(tcode, np.int64), ev["value"].to_numpy(np.float64),
                  ev["timestamp"].to_numpy(np.int64), event_types=[str(t) for t in types],
                  user_map=user_map, item_map=item_map, items=it, users=us, config=events_config)
