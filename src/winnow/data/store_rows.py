"""Row shaping shared by the SQL stores (winnow.data.sqlite_store, winnow.data.postgres_store).

Both stores hold the same tables; they differ only in how JSON columns travel: SQLite keeps
them as text (``json_text=True``: decoded here with ``json.loads``), PostgreSQL as ``jsonb``
(``json_text=False``: psycopg hands back decoded values). Everything here is pure shaping --
no SQL, no connections -- so the two stores return the same dicts and frames (the Store
contract, tested by tests/contract/test_store_contract.py). All ids are external strings.

- ``impression_rows``: validate ``Store.log_impressions`` input into insert rows
  ``IMPRESSION_COLUMNS``; ``impression_record`` is the inverse for ``read_impressions``.
- ``outcome_records`` / ``outcomes_frame``: ``Store.impression_outcomes``, one row per shown item.
- ``item_record`` / ``user_record`` + ``items_frame`` / ``users_frame`` / ``events_frame``:
  the catalog, user and per-user event reads.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from winnow.core.errors import DataError
from winnow.data.schema import EVENT_COLUMNS, ITEM_COLUMNS, ITEM_SCALARS, USER_COLUMNS

#: impressions table columns in insert/select order (``ts`` is the contract's ``timestamp``)
IMPRESSION_COLUMNS = ("request_id", "user_id", "ts", "model_version", "surface", "context", "items")
_REQUIRED = ("request_id", "user_id", "timestamp", "items")
#: the per-impression fields every outcome row repeats
IMPRESSION_HEAD = ("request_id", "user_id", "timestamp", "model_version", "surface")
OUTCOME_COLUMNS = [*IMPRESSION_HEAD, "item_id", "position", "score", "propensity", "events"]


def opt_int(x: Any) -> int | None:
    """``int(x)``, or None for a missing value (None, pd.NA, NaN)."""
    return None if x is None or x is pd.NA or (isinstance(x, float) and np.isnan(x)) else int(x)


def _as_is(value: Any) -> Any:
    return value


def _loader(json_text: bool) -> Callable[[Any], Any]:
    return json.loads if json_text else _as_is


# --- impressions ----------------------------------------------------------------------------
def impression_rows(impressions: list[dict[str, Any]], *,
                    encode: Callable[[Any], Any]) -> list[tuple[Any, ...]]:
    """Insert rows (``IMPRESSION_COLUMNS`` order) for ``Store.log_impressions``.

    ``encode`` turns the ``context`` dict and the ``items`` list into the JSON column value
    (compact text for SQLite, ``psycopg``'s ``Jsonb`` for PostgreSQL).
    Raises DataError naming the impression (``line`` = position in the list) and the missing
    field when request_id, user_id, timestamp or items is absent or empty; nothing is written.
    """
    rows = []
    for pos, imp in enumerate(impressions):
        for key in _REQUIRED:
            if imp.get(key) in (None, ""):
                raise DataError("missing field", source="impressions", line=pos, field=key)
        rows.append((str(imp["request_id"]), str(imp["user_id"]), int(imp["timestamp"]),
                     imp.get("model_version"), imp.get("surface"), encode(imp.get("context") or {}),
                     encode(list(imp["items"]))))
    return rows


def impression_record(r: Sequence[Any], *, json_text: bool) -> dict[str, Any]:
    """One stored impression (a row in ``IMPRESSION_COLUMNS`` order) as the contract's dict."""
    load = _loader(json_text)
    return {**dict(zip(IMPRESSION_HEAD, r[:5])), "context": load(r[5]), "items": load(r[6])}


def outcome_records(head: Sequence[Any], shown: Iterable[dict[str, Any]],
                    follow: Mapping[str, list[str]]) -> Iterator[dict[str, Any]]:
    """Rows of ``Store.impression_outcomes`` for one impression.

    Args:
        head: the impression's ``IMPRESSION_HEAD`` values, in that order.
        shown: its slate entries ({item_id, position, score, propensity, ...}).
        follow: str(item_id) -> event types later logged for that item with this impression's
            request_id, in log order; an item absent from it gets an empty list.
    """
    base = dict(zip(IMPRESSION_HEAD, head))
    for s in shown:
        yield {**base, "item_id": s.get("item_id"), "position": s.get("position"),
               "score": s.get("score"), "propensity": s.get("propensity"),
               "events": follow.get(str(s.get("item_id")), [])}


def outcomes_frame(records: Iterable[dict[str, Any]]) -> pd.DataFrame:
    """``OUTCOME_COLUMNS`` frame (also when empty)."""
    return pd.DataFrame(list(records), columns=OUTCOME_COLUMNS)


# --- items, users, events -------------------------------------------------------------------
def item_record(r: Sequence[Any], *, json_text: bool) -> dict[str, Any]:
    """One catalog row (``ITEM_COLUMNS`` order, available/sponsored as 0/1 or bool) as a dict."""
    load = _loader(json_text)
    return {"item_id": r[0], "title": r[1], "text": r[2], "categories": load(r[3]), "creator": r[4],
            "created_at": r[5], "available": bool(r[6]), "sponsored": bool(r[7]),
            "attributes": load(r[8])}


def user_record(r: Sequence[Any], *, json_text: bool) -> dict[str, Any]:
    """One user row (user_id, created_at, attributes, interests) as a dict; a user known only
    from events (NULL profile columns) gets empty attributes and interests."""
    if json_text:
        attrs = json.loads(r[2]) if r[2] else {}
        interests = json.loads(r[3]) if r[3] else []
    else:
        attrs = r[2] if r[2] is not None else {}
        interests = r[3] if r[3] is not None else []
    return {"user_id": r[0], "created_at": r[1], "attributes": attrs, "interests": interests}


def _with_created_at(frame: pd.DataFrame) -> pd.DataFrame:
    frame["created_at"] = frame["created_at"].astype("Int64")
    return frame


def items_frame(records: list[dict[str, Any]]) -> pd.DataFrame:
    """``ITEM_COLUMNS`` frame of ``item_record`` dicts; created_at as nullable Int64."""
    return _with_created_at(pd.DataFrame(records, columns=list(ITEM_COLUMNS)))


def item_scalars_frame(rows: Sequence[Sequence[Any]]) -> pd.DataFrame:
    """``ITEM_SCALARS`` frame of (item_id, creator, created_at, available, sponsored) rows:
    item_id and creator as object columns of Python str (not converted to pandas' string dtype:
    at 10^6 items that conversion holds the GIL for seconds, stalling a serving worker's
    requests while a challenger loads), created_at nullable Int64, the flags bool."""
    cols = list(zip(*rows)) if rows else [()] * len(ITEM_SCALARS)
    return pd.DataFrame({"item_id": pd.Series(cols[0], dtype=object), "creator": pd.Series(cols[1], dtype=object),
                         "created_at": pd.array([None if v is None else int(v) for v in cols[2]], dtype="Int64"),
                         "available": np.asarray(cols[3], bool), "sponsored": np.asarray(cols[4], bool)})


SCALARS_BATCH = 20_000  # rows per frame of Store.iter_item_scalars (~5 ms of GIL-held work each)


def fetch_batches(cursor: Any, batch: int) -> list[list[Any]]:
    """Every row of an executed DB-API ``cursor``, as lists of at most ``batch`` rows (each
    ``fetchmany`` is one short hold of the GIL; one ``fetchall`` of 10^6 rows is one long one)."""
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    out = []
    while rows := cursor.fetchmany(batch):
        out.append(rows)
    return out


def item_scalars_frames(batches: list[list[Any]]) -> Iterator[pd.DataFrame]:
    """One ``item_scalars_frame`` per batch of rows (``fetch_batches``), built when the caller
    asks for it; each batch leaves ``batches`` as its frame is built, so the rows are freed a
    batch at a time (freeing 10^6 rows at the end was one ~50 ms hold of the GIL)."""
    batches.reverse()
    while batches:
        yield item_scalars_frame(batches.pop())


def concat_scalars(frames: Iterable[pd.DataFrame]) -> pd.DataFrame:
    """The frames of ``item_scalars_frames`` as one frame (indexed from 0; the empty frame when none)."""
    parts = list(frames)
    return pd.concat(parts, ignore_index=True) if parts else item_scalars_frame([])


def users_frame(records: list[dict[str, Any]]) -> pd.DataFrame:
    """``USER_COLUMNS`` frame of ``user_record`` dicts; created_at as nullable Int64."""
    return _with_created_at(pd.DataFrame(records, columns=list(USER_COLUMNS)))


def events_frame(rows: list[tuple[Any, ...]]) -> pd.DataFrame:
    """``EVENT_COLUMNS`` frame of (user_id, item_id, event_type, value, timestamp, event_id,
    context) rows; value float64 (NaN when absent), timestamp int64."""
    frame = pd.DataFrame(rows, columns=list(EVENT_COLUMNS))
    frame["value"] = frame["value"].astype(np.float64)
    frame["timestamp"] = frame["timestamp"].astype(np.int64)
    return frame


# --- Store.item_daily's aggregates ----------------------------------------------------------
def impression_day_counts(impressions: Iterable[Mapping[str, Any]]) -> dict[tuple[str, int], list[int]]:
    """(str(item_id), UTC day) -> [slates showing the item, sum of its positions] over
    ``impressions`` (``Store.log_impressions`` dicts; a missing position counts 0). What both SQL
    stores fold into ``impression_item_days`` for the rows they insert (and take back on erasure)."""
    days: dict[tuple[str, int], list[int]] = {}
    for imp in impressions:
        day = int(imp["timestamp"]) // 86400
        for it in imp["items"]:
            agg = days.setdefault((str(it["item_id"]), day), [0, 0])
            agg[0] += 1
            agg[1] += int(it.get("position", 0))
    return days


def event_day_counts(iid: np.ndarray, tid: np.ndarray, ts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct (item id, UTC day, event type id) keys of a batch of events (int64 [k, 3],
    sorted) and how many events each has (int64 [k]): what both SQL stores fold into
    ``event_item_days``."""
    day = np.floor_divide(np.asarray(ts, np.int64), 86_400)
    keys = np.stack([np.asarray(iid, np.int64), day, np.asarray(tid, np.int64)], 1)
    if not len(keys):
        return keys.reshape(0, 3), np.zeros(0, np.int64)
    uniq, counts = np.unique(keys, axis=0, return_counts=True)
    return uniq, counts.astype(np.int64)

