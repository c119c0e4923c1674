"""The SQL of SQLiteStore's write transactions: key tables, events, items, users, impressions,
erasure.

Every function runs inside a transaction the caller opened (``SQLiteStore._write``: one
``BEGIN IMMEDIATE`` ... ``COMMIT``) on the writer connection, so a batch is all or nothing.
Frames arrive already validated (winnow.data.validate). Dense key ids are ``rowid - 1`` of the
key tables (append-only), the ids the ``events`` table and the event blocks store.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
from typing import Any

import numpy as np
import pandas as pd

from winnow.data import sqlite_blocks as blocks
from winnow.data.schema import ITEM_COLUMNS, USER_COLUMNS
from winnow.core.errors import StoreError
from winnow.data.sqlite_schema import (
    EVENT_DAYS_UPSERT,
    EVENT_INDEXES,
    IMPRESSION_DAYS_UPSERT,
    ROW_COUNT_ADD,
)
from winnow.data.store_rows import event_day_counts, impression_day_counts, opt_int

_REBUILD_ROWS = 100_000
_CHUNK = 500  # ids per "IN (...)" query (below SQLite's variable limit)


def dumps(x: Any) -> str:
    """Compact JSON text of a JSON column (non-ASCII kept as is)."""
    return json.dumps(x, separators=(",", ":"), ensure_ascii=False)


# --- key tables -----------------------------------------------------------------------------
def keys(con: sqlite3.Connection, table: str, externals: pd.Series) -> np.ndarray:
    """Dense ids (int64 [n]) for external ids, adding unknown ones (inside a transaction)."""
    codes, uniques = pd.factorize(externals, sort=False)
    uniq = [str(u) for u in uniques]
    con.executemany(f"INSERT OR IGNORE INTO {table}(external) VALUES (?)", ((u,) for u in uniq))
    found = lookup(con, table, uniq)
    ids = np.fromiter((found[u] for u in uniq), dtype=np.int64, count=len(uniq))
    return ids[codes]


def lookup(con: sqlite3.Connection, table: str, externals: list[str]) -> dict[str, int]:
    """External id -> dense id for the stored ones among ``externals``."""
    out: dict[str, int] = {}
    if len(externals) > 20 * _CHUNK:  # many ids: one scan beats many IN queries
        wanted = set(externals)
        for ext, rid in con.execute(f"SELECT external, id FROM {table}"):
            if ext in wanted:
                out[ext] = rid - 1
        return out
    for start in range(0, len(externals), _CHUNK):
        part = externals[start:start + _CHUNK]
        q = f"SELECT external, id FROM {table} WHERE external IN ({','.join('?' * len(part))})"
        out.update((ext, rid - 1) for ext, rid in con.execute(q, part))
    return out


# --- events ---------------------------------------------------------------------------------
def new_events(con: sqlite3.Connection, ev: pd.DataFrame) -> pd.DataFrame:
    """Drop events whose event_id is already stored or repeated earlier in the batch."""
    eid = ev["event_id"]
    has = eid.notna().to_numpy()
    if not has.any():
        return ev
    ids = eid[has].astype(str).unique().tolist()
    stored: set[str] = set()
    for start in range(0, len(ids), _CHUNK):
        part = ids[start:start + _CHUNK]
        q = f"SELECT event_id FROM events WHERE event_id IN ({','.join('?' * len(part))})"
        stored.update(r[0] for r in con.execute(q, part))
    drop = has & (eid.duplicated(keep="first").to_numpy() | eid.isin(stored).to_numpy())
    return ev[~drop] if drop.any() else ev


def insert_events(con: sqlite3.Connection, ev: pd.DataFrame) -> int:
    """Append the batch's new events (rows and one packed block); returns how many."""
    ev = new_events(con, ev)
    if not len(ev):
        return 0
    uid = keys(con, "user_keys", ev["user_id"])
    iid = keys(con, "item_keys", ev["item_id"])
    tid = keys(con, "event_types", ev["event_type"])
    value = ev["value"].to_numpy(np.float64)  # SQLite stores NaN as NULL
    ts = ev["timestamp"].to_numpy(np.int64)
    first = (con.execute("SELECT max(seq) FROM events").fetchone()[0] or 0) + 1
    names = ["seq", "uid", "iid", "tid", "value", "ts"]
    cols: list = [range(first, first + len(ev)), uid.tolist(), iid.tolist(), tid.tolist(), value.tolist(),
                  ts.tolist()]
    # bind only the optional columns a batch uses: three always-NULL columns halved insert speed (measured)
    if ev["event_id"].notna().any():
        names.append("event_id")
        cols.append(ev["event_id"].tolist())
    if ev["context"].notna().any():
        ctx = ev["context"].tolist()
        req = [json.loads(c).get("request_id") if c is not None else None for c in ctx]
        names += ["context", "request_id"]
        cols += [ctx, [None if r is None else str(r) for r in req]]
    rows = zip(*cols)
    # a batch larger than the table: build the indexes once, sorted, instead of row by row
    # (same transaction, so readers never see them missing)
    rebuild = len(ev) >= max(_REBUILD_ROWS, first - 1)
    if rebuild:
        for name, _ in EVENT_INDEXES:
            con.execute(f"DROP INDEX IF EXISTS {name}")
    con.executemany(f"INSERT INTO events({', '.join(names)}) VALUES ({', '.join('?' * len(names))})", rows)
    if rebuild:
        for _, ddl in EVENT_INDEXES:
            con.execute(ddl)
    blocks.write_block(con, first, uid, iid, tid, value, ts)
    add_event_days(con, iid, tid, ts)
    con.execute(ROW_COUNT_ADD, ("events", len(ev)))
    return len(ev)


def add_event_days(con: sqlite3.Connection, iid: np.ndarray, tid: np.ndarray, ts: np.ndarray, *,
                   sign: int = 1) -> None:
    """Fold a batch into the per-(item, UTC day, type) event counts (``Store.item_daily``);
    ``sign=-1`` takes erased events back out (a count reaching 0 drops its row)."""
    uniq, counts = event_day_counts(iid, tid, ts)
    rows = list(zip(*uniq.T.tolist(), (sign * counts).tolist(), strict=True)) if len(uniq) else []
    con.executemany(EVENT_DAYS_UPSERT, rows)
    if sign < 0:
        con.executemany("DELETE FROM event_item_days WHERE iid = ? AND day = ? AND tid = ? AND n <= 0",
                        [r[:3] for r in rows])


def add_impression_days(con: sqlite3.Connection, impressions: list[dict[str, Any]], *, sign: int = 1) -> None:
    """Fold slates into the per-(item, UTC day) impression aggregates; ``sign=-1`` takes erased
    slates back out (a row shown 0 times is dropped)."""
    rows = [(i, d, sign * n, sign * p) for (i, d), (n, p) in impression_day_counts(impressions).items()]
    con.executemany(IMPRESSION_DAYS_UPSERT, rows)
    if sign < 0:
        con.executemany("DELETE FROM impression_item_days WHERE item = ? AND day = ? AND shown <= 0",
                        [r[:2] for r in rows])


# --- catalog and users ----------------------------------------------------------------------
def upsert_items(con: sqlite3.Connection, items: pd.DataFrame) -> int:
    """Insert or replace items (validated ITEM_COLUMNS frame); returns how many."""
    iid = keys(con, "item_keys", items["item_id"])
    rows = [(int(i), r[1], r[2], dumps(r[3]), r[4], opt_int(r[5]), int(r[6]), int(r[7]), dumps(r[8]))
            for i, r in zip(iid, items[list(ITEM_COLUMNS)].itertuples(index=False, name=None))]
    con.executemany("INSERT OR REPLACE INTO items VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    return len(rows)


def upsert_users(con: sqlite3.Connection, users: pd.DataFrame) -> int:
    """Insert or replace users (validated USER_COLUMNS frame); returns how many."""
    uid = keys(con, "user_keys", users["user_id"])
    rows = [(int(u), opt_int(r[1]), dumps(r[2]), dumps(r[3]))
            for u, r in zip(uid, users[list(USER_COLUMNS)].itertuples(index=False, name=None))]
    con.executemany("INSERT OR REPLACE INTO users VALUES (?, ?, ?, ?)", rows)
    return len(rows)


def erase_user(con: sqlite3.Connection, user_id: str) -> dict[str, Any]:
    """SQLiteStore.delete_user's transaction: the user's impressions, events (rows and packed
    blocks) and profile deleted, the external id replaced by an ``erased:<hex>`` tombstone, the
    row counts and the per-day aggregates of ``Store.item_daily`` decremented by what is
    removed; a blocks/rows mismatch raises (nothing erased). Turns ``secure_delete``
    on for the connection (deleted pages zeroed); the caller turns it off after the transaction."""
    row = con.execute("SELECT id - 1 FROM user_keys WHERE external = ?", (user_id,)).fetchone()
    out: dict[str, Any] = {"user_id": user_id, "found": row is not None, "events": 0,
                           "profile": False, "impressions": 0}
    gone = [{"timestamp": ts, "items": json.loads(items)} for ts, items in
            con.execute("SELECT ts, items FROM impressions WHERE user_id = ?", (user_id,))]
    add_impression_days(con, gone, sign=-1)
    out["impressions"] = con.execute("DELETE FROM impressions WHERE user_id = ?", (user_id,)).rowcount
    con.execute(ROW_COUNT_ADD, ("impressions", -out["impressions"]))
    if row is None:
        out["found"] = out["impressions"] > 0
        return out
    uid = int(row[0])
    con.execute("PRAGMA secure_delete = ON")
    ev = np.asarray(con.execute("SELECT iid, tid, ts FROM events WHERE uid = ?", (uid,)).fetchall(),
                    np.int64).reshape(-1, 3)
    add_event_days(con, ev[:, 0], ev[:, 1], ev[:, 2], sign=-1)
    out["events"] = con.execute("DELETE FROM events WHERE uid = ?", (uid,)).rowcount
    con.execute(ROW_COUNT_ADD, ("events", -out["events"]))
    in_blocks = blocks.drop_user(con, uid)
    if in_blocks != out["events"]:
        raise StoreError(f"event_blocks hold {in_blocks} events of user {user_id!r}, the events "
                         f"table {out['events']}: store inconsistent, nothing was erased")
    out["profile"] = con.execute("DELETE FROM users WHERE uid = ?", (uid,)).rowcount > 0
    con.execute("UPDATE user_keys SET external = ? WHERE id = ?", (f"erased:{secrets.token_hex(16)}", uid + 1))
    return out


def insert_impressions(con: sqlite3.Connection, rows: list[tuple], impressions: list[dict[str, Any]]) -> None:
    """SQLiteStore.log_impressions' transaction: each impression row inserted unless its
    request id is stored (idempotent retries); for the newly inserted ones the per-item daily
    aggregates and the row count in the same transaction."""
    added: list[dict[str, Any]] = []
    for row, imp in zip(rows, impressions, strict=True):
        if con.execute("INSERT OR IGNORE INTO impressions(request_id, user_id, ts, model_version, "
                       "surface, context, items) VALUES (?, ?, ?, ?, ?, ?, ?)", row).rowcount:
            added.append(imp)
    add_impression_days(con, added)  # per-item daily aggregates in the same transaction
    con.execute(ROW_COUNT_ADD, ("impressions", len(added)))
