"""The embedded default Store: one SQLite file in WAL mode (see docs/STORE.md for the measurements).

Durability: every write is one transaction (``BEGIN IMMEDIATE`` ... ``COMMIT``) and returns only
after COMMIT. With ``synchronous="full"`` (default) the WAL is fsynced at every commit, so an
acknowledged write survives power loss; ``"normal"`` skips that fsync (commits survive a process
crash / kill -9, the last ones may be lost on power loss or an OS crash).

Concurrency: WAL lets other processes (and threads) read while one writes. Inside a process,
writes go through one writer connection guarded by a lock; reads use one connection per
thread (``threading.local``), so FastAPI's threadpool may call any method concurrently.

Layout: winnow.data.sqlite_schema; the SQL of each write: winnow.data.sqlite_writes; row shaping
shared with the PostgreSQL store: winnow.data.store_rows.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from winnow.core.errors import StoreError, StoreUnavailableError, UnknownIdError
from winnow.data import sqlite_blocks as blocks
from winnow.data import daily_sql, rollout_sql, sample_sql, sqlite_feedback, sqlite_shown
from winnow.data import sqlite_writes as writes
from winnow.data import store_rows as shape
from winnow.data import user_sample
from winnow.data.sqlite_schema import DDL as _DDL
from winnow.data.sqlite_schema import EVENT_INDEXES as _EVENT_INDEXES
from winnow.data.sqlite_schema import (
    EVENT_DAYS_BACKFILL,
    IMPRESSION_DAYS_BACKFILL,
    ROW_COUNTS_BACKFILL,
)
from winnow.data.sqlite_schema import SCHEMA_VERSION
from winnow.data.sqlite_schema import UNAVAILABLE as _UNAVAILABLE
from winnow.data.rollouts import Rollout, RolloutDecision
from winnow.data.store import EventLog, Store, in_given_order
from winnow.data.store_errors import maps_driver_errors
from winnow.data.validate import normalize_events, normalize_items, normalize_users

_CACHE_KIB = -8192        # PRAGMA cache_size of the writer while serving (negative: KiB)
_BULK_CACHE_KIB = -65536  # during one write of >= _BULK_ROWS rows (an import)
_BULK_ROWS = 50_000


def _driver_error(store: SQLiteStore, exc: Exception) -> StoreError:
    """A sqlite3 (or OS) error escaping a store call: the file could not answer it, so
    StoreUnavailableError, naming the SQLite result code when it is a known outage."""
    code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
    why = f" ({_UNAVAILABLE[code]})" if code in _UNAVAILABLE else ""
    return StoreUnavailableError(f"store {store.path.name}: {type(exc).__name__}: {exc}{why}")


@maps_driver_errors((sqlite3.Error, OSError), _driver_error)
class SQLiteStore(Store):
    """Store in one SQLite database file (created if missing).

    Args:
        path: database file.
        synchronous: "full" (durable across power loss, default) or "normal" (durable across
            process crashes only).
        busy_timeout_ms: how long a writer waits for another process's write lock.
    """

    def __init__(self, path: str | Path, *, synchronous: str = "full", busy_timeout_ms: int = 5000) -> None:
        if synchronous.lower() not in ("full", "normal", "extra"):
            raise StoreError(f"synchronous must be 'full', 'normal' or 'extra', got {synchronous!r}")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._sync = synchronous.upper()
        self._busy = int(busy_timeout_ms)
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._conn_lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._closed = False
        self._writer = self._connect()
        self._writer.execute("PRAGMA journal_mode=WAL")
        # 8 MiB page cache while serving (a 64 MiB one filled with freshly written impression and
        # event pages and read as +64 MiB RSS in the soak); bulk imports raise it (_BULK_ROWS)
        self._writer.execute(f"PRAGMA cache_size={_CACHE_KIB}")
        self._writer.executescript(_DDL + ";".join(ddl for _, ddl in _EVENT_INDEXES) + ";")
        self._writer.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (SCHEMA_VERSION,))
        for table, backfill in (("impression_item_days", IMPRESSION_DAYS_BACKFILL),
                                ("event_item_days", EVENT_DAYS_BACKFILL), ("row_counts", ROW_COUNTS_BACKFILL)):
            if self._writer.execute("SELECT 1 FROM meta WHERE key = ?", (table,)).fetchone() is None:
                self._write(lambda con, sql=backfill, key=table: (  # once, for an older store
                    con.execute(sql), con.execute("INSERT INTO meta VALUES (?, '1')", (key,))))

    # --- connections ----------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        con = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False,
                              timeout=self._busy / 1000)
        con.execute(f"PRAGMA busy_timeout={self._busy}")
        con.execute(f"PRAGMA synchronous={self._sync}")
        user_sample.register(con)  # winnow_user_bucket(user_id): the drift monitor's user sample
        with self._conn_lock:
            self._all.append(con)
        return con

    def _reader(self) -> sqlite3.Connection:
        if self._closed:
            raise StoreError(f"store {self.path} is closed")
        con = getattr(self._local, "con", None)
        if con is None:
            con = self._local.con = self._connect()
        return con

    def _write(self, fn: Any, *args: Any, rows: int = 0) -> Any:
        """Run fn(con, *args) in one IMMEDIATE transaction; all or nothing. ``rows`` >= _BULK_ROWS
        keeps the index B-trees of that import in a 64 MiB cache for its duration."""
        if self._closed:
            raise StoreError(f"store {self.path} is closed")
        with self._write_lock:
            con = self._writer
            bulk = rows >= _BULK_ROWS
            if bulk:
                con.execute(f"PRAGMA cache_size={_BULK_CACHE_KIB}")
            try:
                con.execute("BEGIN IMMEDIATE")
                try:
                    result = fn(con, *args)
                    con.execute("COMMIT")
                except BaseException:
                    if con.in_transaction:  # SQLite may already have rolled back (e.g. disk full)
                        con.execute("ROLLBACK")
                    raise
            except sqlite3.OperationalError as exc:
                code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
                if code in _UNAVAILABLE:  # disk full, read-only, I/O error, locked too long
                    raise StoreUnavailableError(
                        f"{self.path.name} refuses writes: {exc} ({_UNAVAILABLE[code]})") from exc
                raise
            finally:
                if bulk:  # shrinking frees the pages past the limit
                    con.execute(f"PRAGMA cache_size={_CACHE_KIB}")
            return result

    def close(self) -> None:
        with self._conn_lock:
            conns, self._all = self._all, []
        self._closed = True
        for con in conns:
            con.close()

    # --- key tables -----------------------------------------------------------------------
    def _key_list(self, table: str) -> list[str]:
        return [r[0] for r in self._reader().execute(f"SELECT external FROM {table} ORDER BY id")]

    # --- writes ---------------------------------------------------------------------------
    def append_events(self, events: pd.DataFrame, *, source: str = "events") -> int:
        ev = normalize_events(events, source=source)
        return self._write(writes.insert_events, ev, rows=len(ev))

    def upsert_items(self, items: pd.DataFrame, *, source: str = "items") -> int:
        return self._write(writes.upsert_items, normalize_items(items, source=source))

    def upsert_users(self, users: pd.DataFrame, *, source: str = "users") -> int:
        return self._write(writes.upsert_users, normalize_users(users, source=source))

    def import_all(self, *, events: pd.DataFrame | None = None, items: pd.DataFrame | None = None,
                   users: pd.DataFrame | None = None, source: str = "import") -> dict[str, int]:
        # validate everything before the transaction starts: a bad row writes nothing
        it = normalize_items(items, source=f"{source}:items") if items is not None else None
        us = normalize_users(users, source=f"{source}:users") if users is not None else None
        ev = normalize_events(events, source=f"{source}:events") if events is not None else None

        def run(con: sqlite3.Connection) -> dict[str, int]:
            return {"items": writes.upsert_items(con, it) if it is not None else 0,
                    "users": writes.upsert_users(con, us) if us is not None else 0,
                    "events": writes.insert_events(con, ev) if ev is not None else 0}
        return self._write(run, rows=sum(len(f) for f in (it, us, ev) if f is not None))

    def patch_item(self, item_id: str, *, available: bool | None = None,
                   sponsored: bool | None = None, attributes: dict[str, Any] | None = None) -> None:
        def run(con: sqlite3.Connection) -> None:
            row = con.execute("SELECT i.iid, i.attributes FROM items i JOIN item_keys k ON k.id = i.iid + 1 "
                              "WHERE k.external = ?", (str(item_id),)).fetchone()
            if row is None:
                raise UnknownIdError("item", item_id)
            attrs = json.loads(row[1])
            attrs.update(attributes or {})
            con.execute("UPDATE items SET available = coalesce(?, available), sponsored = coalesce(?, sponsored), "
                        "attributes = ? WHERE iid = ?",
                        (None if available is None else int(available),
                         None if sponsored is None else int(sponsored), writes.dumps(attrs), row[0]))
        self._write(run)

    def delete_user(self, user_id: str) -> dict[str, Any]:
        """Erase one user in one transaction: events (rows and packed blocks), profile,
        impressions; the external id in ``user_keys`` becomes an unguessable tombstone
        (``erased:<hex>``: the dense ids of other users must not shift). Deleted pages are
        zeroed (``secure_delete``); old page images leave the WAL at the next checkpoint."""
        try:
            return self._write(writes.erase_user, str(user_id))
        finally:
            with self._write_lock:
                if not self._closed:
                    self._writer.execute("PRAGMA secure_delete = OFF")

    def log_impressions(self, impressions: list[dict[str, Any]]) -> None:
        """Store served slates; a request_id already stored is skipped (idempotent retries)."""
        rows = shape.impression_rows(impressions, encode=writes.dumps)
        self._write(writes.insert_impressions, rows, impressions)

    # --- reads ----------------------------------------------------------------------------
    def read_events(self, *, since: int | None = None, until: int | None = None) -> EventLog:
        con = self._reader()
        con.execute("BEGIN")  # one snapshot for the blocks and the key lists
        try:
            cols = blocks.read_blocks(con, since=since, until=until)
            return EventLog(*cols, user_ids=self._key_list("user_keys"), item_ids=self._key_list("item_keys"),
                            event_types=self._key_list("event_types"))
        finally:
            con.execute("COMMIT")

    _ITEM_SQL = ("SELECT k.external, i.title, i.text, i.categories, i.creator, i.created_at, i.available, "
                 "i.sponsored, i.attributes FROM items i JOIN item_keys k ON k.id = i.iid + 1")

    def read_items(self) -> pd.DataFrame:
        return shape.items_frame([shape.item_record(r, json_text=True)
                                  for r in self._reader().execute(self._ITEM_SQL + " ORDER BY i.iid")])

    def iter_item_scalars(self, batch: int = shape.SCALARS_BATCH) -> Iterator[pd.DataFrame]:
        cur = self._reader().execute("SELECT k.external, i.creator, i.created_at, i.available, i.sponsored "
                                     "FROM items i JOIN item_keys k ON k.id = i.iid + 1 ORDER BY i.iid")
        return shape.item_scalars_frames(shape.fetch_batches(cur, batch))  # one statement: one snapshot

    def read_item_scalars(self) -> pd.DataFrame:
        return shape.concat_scalars(self.iter_item_scalars())

    def read_items_by_id(self, item_ids: list[str]) -> pd.DataFrame:
        wanted = list(dict.fromkeys(str(i) for i in item_ids))
        con, rows = self._reader(), []
        for a in range(0, len(wanted), 500):  # SQLite's bound-parameter limit, with room
            chunk = wanted[a:a + 500]
            rows += con.execute(self._ITEM_SQL + f" WHERE k.external IN ({','.join('?' * len(chunk))})",
                                chunk).fetchall()
        return in_given_order(shape.items_frame([shape.item_record(r, json_text=True) for r in rows]), wanted)

    def get_item(self, item_id: str) -> dict[str, Any] | None:
        r = self._reader().execute(self._ITEM_SQL + " WHERE k.external = ?", (str(item_id),)).fetchone()
        return None if r is None else shape.item_record(r, json_text=True)

    _USER_SQL = ("SELECT k.external, u.created_at, u.attributes, u.interests FROM user_keys k "
                 "LEFT JOIN users u ON u.uid = k.id - 1")

    def read_users(self) -> pd.DataFrame:
        """Every known user (also those known only from events, with empty attributes)."""
        return shape.users_frame([shape.user_record(r, json_text=True)
                                  for r in self._reader().execute(self._USER_SQL + " ORDER BY k.id")])

    def get_user(self, user_id: str) -> dict[str, Any] | None:
        r = self._reader().execute(self._USER_SQL + " WHERE k.external = ?", (str(user_id),)).fetchone()
        return None if r is None else shape.user_record(r, json_text=True)

    def user_events(self, user_id: str, *, limit: int = 100) -> pd.DataFrame:
        return shape.events_frame(self._reader().execute(
            # the user's rowid first, then events(uid, ts) and key lookups by rowid: an index walk
            # of this user's events (joining on ``ik.id - 1 = e.iid`` instead scans item_keys per row)
            "SELECT uk.external, ik.external, t.external, e.value, e.ts, e.event_id, e.context "
            "FROM user_keys uk JOIN events e ON e.uid = uk.id - 1 JOIN item_keys ik ON ik.id = e.iid + 1 "
            "JOIN event_types t ON t.id = e.tid + 1 WHERE uk.external = ? ORDER BY e.ts DESC, e.seq DESC "
            "LIMIT ?", (str(user_id), int(limit))).fetchall())

    tracks_user_versions = True

    def user_version(self, user_id: str) -> int | None:
        """max(seq) of the user's events: an index-only read (None: no events, or the read
        failed -- the caller then treats its cached record as stale)."""
        try:
            row = self._reader().execute(
                "SELECT max(e.seq) FROM events e WHERE e.uid = (SELECT id - 1 FROM user_keys WHERE external = ?)",
                (str(user_id),)).fetchone()
        except sqlite3.Error:
            return None
        return None if row is None or row[0] is None else int(row[0])

    def read_impressions(self, *, since: int | None = None) -> list[dict[str, Any]]:
        rows = self._reader().execute(
            "SELECT request_id, user_id, ts, model_version, surface, context, items FROM impressions "
            "WHERE ts >= ? ORDER BY ts, seq", (int(since) if since is not None else -(2**62),))
        return [shape.impression_record(r, json_text=True) for r in rows]

    def item_daily(self, item_id: str, *, first_day: int, days: int) -> dict[str, Any]:
        """Store.item_daily from two primary-key range reads of per-day aggregates (at most
        days x event types + days rows, whatever the item's popularity)."""
        return daily_sql.item_daily(self._reader(), "?", 1, item_id, first_day=first_day, days=days)

    def read_shown_items(self, *, since: int, until: int, user_sample: int | None = None) -> pd.DataFrame:
        """Store.read_shown_items, unnested in SQL (sqlite_shown)."""
        return sqlite_shown.read_shown_items(self._reader(), since=since, until=until, user_sample=user_sample)

    def read_source_scores(self, *, since: int, until: int, user_sample: int | None = None) -> pd.DataFrame:
        """Store.read_source_scores, unnested in SQL (sqlite_shown)."""
        return sqlite_shown.read_source_scores(self._reader(), since=since, until=until, user_sample=user_sample)

    def read_candidate_sets(self, *, since: int, until: int, user_sample: int | None = None) -> pd.DataFrame:
        """Store.read_candidate_sets, unnested in SQL (sqlite_shown)."""
        return sqlite_shown.read_candidate_sets(self._reader(), since=since, until=until, user_sample=user_sample)

    def sample_impressions(self, *, since: int, until: int, model_version: str | None,
                           limit: int) -> list[dict[str, Any]]:
        """Store.sample_impressions: only the sampled rows are read (sample_sql)."""
        rows = sample_sql.sample_impression_rows(self._reader(), "?", since=since, until=until,
                                                 model_version=model_version, limit=limit)
        return [shape.impression_record(r, json_text=True) for r in rows]

    def count_impressions(self, *, since: int, until: int) -> int:
        """Store.count_impressions on the timestamp index (sample_sql)."""
        return sample_sql.count_impressions(self._reader(), "?", since=since, until=until)

    def read_feedback_events(self, *, event_types: Sequence[str], since: int | None = None,
                             user_sample: int | None = None) -> pd.DataFrame:
        """Store.read_feedback_events from the event blocks and only the keys named (fast path)."""
        return sqlite_feedback.read_feedback_events(self._reader(), event_types=event_types, since=since,
                                                    user_sample=user_sample)

    def impression_outcomes(self, *, since: int | None = None) -> pd.DataFrame:
        """One row per shown item: request_id, user_id, timestamp, model_version, surface, item_id,
        position, score, propensity, and the event types later logged for that item with the
        same ``context.request_id`` (``events``: list[str], empty when nothing followed)."""
        out: list[dict[str, Any]] = []
        con = self._reader()
        for imp in self.read_impressions(since=since):
            follow: dict[str, list[str]] = {}
            for item, etype in con.execute(
                    "SELECT ik.external, t.external FROM events e JOIN item_keys ik ON ik.id = e.iid + 1 "
                    "JOIN event_types t ON t.id = e.tid + 1 WHERE e.request_id = ? ORDER BY e.seq",
                    (imp["request_id"],)):
                follow.setdefault(item, []).append(etype)
            out.extend(shape.outcome_records([imp[k] for k in shape.IMPRESSION_HEAD], imp["items"], follow))
        return shape.outcomes_frame(out)

    def impressions_after(self, *, after_seq: int, since: int = 0) -> list[tuple[int, dict[str, Any]]]:
        return rollout_sql.impressions_after(self._reader(), "?", after_seq, since, True)

    def request_events(self, *, after_seq: int, event_types: Sequence[str]) -> list[tuple[int, str, str, str]]:
        return rollout_sql.request_events(self._reader(), "?", after_seq, tuple(event_types), 1)

    # --- rollouts (winnow.data.rollout_sql; BEGIN IMMEDIATE serialises writers) -------------
    def start_rollout(self, rollout: Rollout) -> Rollout:
        return self._write(rollout_sql.start, "?", rollout)

    def rollout(self, rollout_id: int | None = None) -> Rollout | None:
        con = self._reader()
        con.execute("BEGIN")  # the row and its decisions from one snapshot
        try:
            return rollout_sql.get(con, "?", rollout_id)
        finally:
            con.execute("COMMIT")

    def update_rollout(self, rollout_id: int, *, revision: int, changes: dict[str, Any],
                       decision: RolloutDecision | None = None) -> Rollout | None:
        return self._write(lambda con: rollout_sql.update(con, "?", rollout_id, revision=revision,
                                                          changes=changes, decision=decision))

    def log_shadow(self, rollout_id: int, records: list[dict[str, Any]]) -> None:
        if records:
            self._write(rollout_sql.log_shadow, "?", rollout_id, records)

    def read_shadow(self, rollout_id: int, *, limit: int | None = None) -> list[dict[str, Any]]:
        return rollout_sql.read_shadow(self._reader(), "?", rollout_id, limit)

    def counts(self) -> dict[str, int]:
        """Events and impressions from ``row_counts`` (kept by every write; a count(*) of 10M
        rows took ~300 ms), items and users by count(*) of their tables."""
        con = self._reader()
        kept = dict(con.execute("SELECT name, n FROM row_counts").fetchall())
        q = {"items": "SELECT count(*) FROM items", "users": "SELECT count(*) FROM user_keys"}
        out = {k: int(con.execute(sql).fetchone()[0] or 0) for k, sql in q.items()}
        return {"events": int(kept.get("events", 0)), "items": out["items"], "users": out["users"],
                "impressions": int(kept.get("impressions", 0))}
