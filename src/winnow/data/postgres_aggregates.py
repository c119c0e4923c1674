"""PostgresStore.item_daily's per-day aggregates and Store.counts' row counts: their tables, the
backfill of an older store, the folds every write path runs in its own transaction, and the
counts read (``item_daily`` reads the aggregates with winnow.data.daily_sql).

``event_item_days`` holds per (item id, UTC day, event type id) the stored events;
``impression_item_days`` per (external item id, UTC day) the logged slates that showed the item
and the sum of its positions (only newly inserted request ids count). Day = ``ts // 86400``
(floor, so negative timestamps fall on negative days). Same layout and rules as the SQLite
store's tables (winnow.data.sqlite_schema), so the two backends answer ``item_daily`` alike and
both equal the reference scan of ``Store.item_daily``:

- appends (binary COPY and the row-by-row path) fold the events they actually inserted;
- ``log_impressions`` folds the slates whose request id was new;
- erasure takes the deleted events and slates back out; a count reaching 0 drops its row.

``row_counts`` holds the number of stored events and impressions (a count(*) of 10M events takes
most of a second) as per-connection shards (``pg_backend_pid() % 16``): every write adds to its
own shard's row, so replicas writing at once do not queue on one hot row; ``counts`` sums them.

Concurrent writers only ever add with ``INSERT ... ON CONFLICT DO UPDATE SET n = n + excluded.n``
(row-locked increments, keys in sorted order), so no count is lost between replicas. A store
written before these tables existed is backfilled once, in SQL, at open (``backfill``; the
``winnow_meta`` keys record that it ran).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from winnow.data.store_rows import event_day_counts, impression_day_counts

DDL = """
CREATE TABLE IF NOT EXISTS event_item_days (
  iid integer NOT NULL, day bigint NOT NULL, tid smallint NOT NULL, n bigint NOT NULL,
  PRIMARY KEY (iid, day, tid));
CREATE TABLE IF NOT EXISTS impression_item_days (
  item text NOT NULL, day bigint NOT NULL, shown bigint NOT NULL, position_sum bigint NOT NULL,
  PRIMARY KEY (item, day));
CREATE TABLE IF NOT EXISTS row_counts (
  name text NOT NULL, shard integer NOT NULL, n bigint NOT NULL, PRIMARY KEY (name, shard));
"""


def _day(ts: str) -> str:
    """SQL for the UTC day of a bigint unix-seconds expression (floor division)."""
    return f"({ts} / 86400 - ({ts} % 86400 < 0)::int)"


# meta key -> the statement that fills the table from the logs (run once, in order)
BACKFILLS = {
    "event_item_days": "INSERT INTO event_item_days (iid, day, tid, n) "
                       f"SELECT iid, {_day('ts')}, tid, count(*) FROM events GROUP BY 1, 2, 3",
    "impression_item_days": "INSERT INTO impression_item_days (item, day, shown, position_sum) "
                            f"SELECT j->>'item_id', {_day('i.ts')}, count(*), "
                            "coalesce(sum(trunc((j->>'position')::numeric)), 0)::bigint "
                            "FROM impressions i CROSS JOIN LATERAL jsonb_array_elements(i.items) j GROUP BY 1, 2",
    "row_counts": "INSERT INTO row_counts (name, shard, n) SELECT 'events', 0, count(*) FROM events "
                  "UNION ALL SELECT 'impressions', 0, count(*) FROM impressions",
}
_ROWS_ADD = ("INSERT INTO row_counts (name, shard, n) VALUES (%s, pg_backend_pid() %% 16, %s) "
             "ON CONFLICT (name, shard) DO UPDATE SET n = row_counts.n + EXCLUDED.n")
_EVENT_UPSERT = ("INSERT INTO event_item_days (iid, day, tid, n) "
                 "SELECT * FROM unnest(%s::int4[], %s::int8[], %s::int2[], %s::int8[]) "
                 "ON CONFLICT (iid, day, tid) DO UPDATE SET n = event_item_days.n + EXCLUDED.n")
_EVENT_DROP = ("DELETE FROM event_item_days a USING unnest(%s::int4[], %s::int8[], %s::int2[]) AS k(iid, day, tid) "
               "WHERE a.iid = k.iid AND a.day = k.day AND a.tid = k.tid AND a.n <= 0")
_IMPRESSION_UPSERT = ("INSERT INTO impression_item_days (item, day, shown, position_sum) "
                      "SELECT * FROM unnest(%s::text[], %s::int8[], %s::int8[], %s::int8[]) "
                      "ON CONFLICT (item, day) DO UPDATE SET shown = impression_item_days.shown + EXCLUDED.shown, "
                      "position_sum = impression_item_days.position_sum + EXCLUDED.position_sum")
_IMPRESSION_DROP = ("DELETE FROM impression_item_days a USING unnest(%s::text[], %s::int8[]) AS k(item, day) "
                    "WHERE a.item = k.item AND a.day = k.day AND a.shown <= 0")


def backfill(cur: Any, lock_key: int) -> list[str]:
    """Fill the aggregate tables of a store that has none yet (idempotent: a table whose
    ``winnow_meta`` key is set is left alone). Serialised with other replicas opening the store
    by the advisory lock ``lock_key``; event and impression writers wait for its COMMIT (SHARE
    locks), so no row is counted twice or missed. Returns the tables filled."""
    cur.execute("SELECT pg_advisory_xact_lock(%s)", (lock_key,))
    done = {r[0] for r in cur.execute("SELECT key FROM winnow_meta WHERE key = ANY(%s)",
                                      (list(BACKFILLS),)).fetchall()}
    todo = [key for key in BACKFILLS if key not in done]
    if todo:
        cur.execute("LOCK TABLE events, impressions IN SHARE MODE")
    for key in todo:
        cur.execute(f"DELETE FROM {key}")  # nothing counted yet may stay: the backfill counts it all
        cur.execute(BACKFILLS[key])
        cur.execute("INSERT INTO winnow_meta VALUES (%s, '1')", (key,))
    return todo


def pending(cur: Any) -> bool:
    """True when a backfill still has to run (some meta key missing)."""
    row = cur.execute("SELECT count(*) FROM winnow_meta WHERE key = ANY(%s)", (list(BACKFILLS),)).fetchone()
    return int(row[0]) < len(BACKFILLS)


def add_events(cur: Any, iid: np.ndarray, tid: np.ndarray, ts: np.ndarray, *, sign: int = 1) -> None:
    """Fold events (store ids, unix seconds) into ``event_item_days`` inside the caller's write
    transaction; ``sign=-1`` takes erased events back out (rows reaching 0 are dropped)."""
    uniq, counts = event_day_counts(iid, tid, ts)
    if not len(uniq):
        return
    cur.execute(_ROWS_ADD, ("events", sign * len(ts)))
    keys = [uniq[:, c].tolist() for c in range(3)]
    cur.execute(_EVENT_UPSERT, (*keys, (sign * counts).tolist()))
    if sign < 0:
        cur.execute(_EVENT_DROP, keys)


def add_impressions(cur: Any, impressions: Iterable[Mapping[str, Any]], *, sign: int = 1) -> None:
    """Fold slates (``log_impressions`` dicts: timestamp, items) into ``impression_item_days``
    inside the caller's write transaction; ``sign=-1`` takes erased slates back out."""
    impressions = list(impressions)
    if not impressions:
        return
    cur.execute(_ROWS_ADD, ("impressions", sign * len(impressions)))
    days = sorted(impression_day_counts(impressions).items())  # sorted: one lock order for all writers
    if not days:
        return
    items, day = [k[0] for k, _ in days], [k[1] for k, _ in days]
    cur.execute(_IMPRESSION_UPSERT, (items, day, [sign * v[0] for _, v in days], [sign * v[1] for _, v in days]))
    if sign < 0:
        cur.execute(_IMPRESSION_DROP, (items, day))


def erase(cur: Any, uid: int | None, user_id: str) -> tuple[int, int]:
    """Delete the user's impressions (by external id) and events (by store id ``uid``; None:
    the user has no key) and take them out of the aggregates, in the caller's transaction.
    Returns (impressions deleted, events deleted)."""
    gone = cur.execute("DELETE FROM impressions WHERE user_id = %s RETURNING ts, items", (user_id,)).fetchall()
    add_impressions(cur, ({"timestamp": ts, "items": items} for ts, items in gone), sign=-1)
    if uid is None:
        return len(gone), 0
    rows = cur.execute("DELETE FROM events WHERE uid = %s RETURNING iid, tid, ts", (uid,)).fetchall()
    ev = np.asarray(rows, np.int64).reshape(-1, 3)
    add_events(cur, ev[:, 0], ev[:, 1], ev[:, 2], sign=-1)
    return len(gone), len(rows)


def counts(cur: Any) -> dict[str, int]:
    """Store.counts: events and impressions from ``row_counts``, items and users by count(*)."""
    row = cur.execute("SELECT (SELECT coalesce(sum(n), 0) FROM row_counts WHERE name = 'events'), "
                      "(SELECT count(*) FROM items), (SELECT count(*) FROM user_keys), "
                      "(SELECT coalesce(sum(n), 0) FROM row_counts WHERE name = 'impressions')").fetchone()
    return dict(zip(("events", "items", "users", "impressions"), (int(x) for x in row)))
