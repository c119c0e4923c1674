"""PostgresStore.read_events: the event log, columnar, in one read transaction.

Events are fetched in keyset chunks of ``_READ_CHUNK`` rows in ``seq`` (insertion) order; each
chunk comes back as one bytea (``string_agg`` of the rows' big-endian binary form,
winnow.data.postgres_schema.READ_AGG) and is decoded with ``np.frombuffer`` -- no per-row
Python. The key lists are read in the same snapshot, so every code points into them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from winnow.data import postgres_schema as pgs
from winnow.data.store import EventLog

_READ_CHUNK = 8_000_000  # events per query (26 bytes each: far below bytea's 1 GiB)


def _key_list(cur: Any, table: str) -> tuple[np.ndarray, list[str]]:
    """(identity ids int64 [n] ascending, external ids [n]) of a key table."""
    rows = cur.execute(f"SELECT id, external FROM {table} ORDER BY id").fetchall()
    return np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows)), [r[1] for r in rows]


def _codes(ids: np.ndarray, stored: np.ndarray, dtype: type) -> np.ndarray:
    """Positions of ``stored`` ids in the sorted key ids (identity ids may have gaps)."""
    if len(ids) and ids[0] == 1 and ids[-1] == len(ids):  # no gaps: position = id - 1
        return (stored - 1).astype(dtype)
    return np.searchsorted(ids, stored).astype(dtype)


def read_event_log(cur: Any, lo: int, hi: int) -> EventLog:
    """All events with lo <= ts < hi (unix seconds), codes into the key lists.

    Runs inside the caller's read transaction (one snapshot); ``cur`` is a psycopg cursor.
    """
    # keyset chunks in seq order (insertion order); one snapshot for the chunks and key lists
    sql = (f"SELECT count(*), max(seq), {pgs.READ_AGG} FROM (SELECT * FROM events WHERE seq > %s "
           f"AND ts >= %s AND ts < %s ORDER BY seq LIMIT %s) s")
    # the ordered scan walks the primary key instead of sorting (on disk when statistics
    # are stale: measured 2x slower); work_mem bounds any sort that remains
    cur.execute("SET LOCAL enable_sort = off; SET LOCAL work_mem = '64MB'")
    parts: list[np.ndarray] = []
    last = -1
    while True:
        row = cur.execute(sql, (last, lo, hi, _READ_CHUNK), binary=True).fetchone()
        if not row[0]:
            break
        parts.append(np.frombuffer(row[2], dtype=pgs.READ_ROW))
        last = int(row[1])
        if row[0] < _READ_CHUNK:
            break
    rows = np.concatenate(parts) if parts else np.empty(0, dtype=pgs.READ_ROW)
    uids, users = _key_list(cur, "user_keys")
    iids, items = _key_list(cur, "item_keys")
    tids, types = _key_list(cur, "event_types")
    return EventLog(_codes(uids, rows["uid"], np.int32), _codes(iids, rows["iid"], np.int32),
                    _codes(tids, rows["tid"], np.int16), rows["value"].astype(np.float64),
                    rows["ts"].astype(np.int64), user_ids=users, item_ids=items, event_types=types)
