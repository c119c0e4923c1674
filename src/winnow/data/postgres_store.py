"""Store on a PostgreSQL server (``[store] url = "postgresql://user@host:port/db"``): the shared
event, catalog, user and impression store of several ``winnow serve`` replicas.

Durability: every write call is one transaction on one pooled connection and returns only
after COMMIT; sessions run with ``synchronous_commit = on``, so an acknowledged write is in the
server's flushed WAL (power-loss safe when the server runs with ``fsync = on``, its default).
A write that raises wrote nothing -- except when the connection breaks during COMMIT itself,
where the outcome is unknown and the error says so (events with an event_id are safe to retry).

Failures: a server that is down, restarting, read-only, out of disk, unreachable or not
answering within ``op_timeout`` raises StoreUnavailableError naming ``host:port/db`` (the service
answers 503); the connection pool checks each connection before use and reconnects by itself
once the server is back (winnow.data.postgres_conn).

Concurrency: a thread-safe ``psycopg_pool.ConnectionPool`` (FastAPI's threadpool may call any
method); several processes may read and write the same database. Key inserts take their locks
in sorted order; a deadlock or serialization failure retries the whole write transaction.

Speed: events without event_id/context are appended with binary ``COPY`` (numpy-encoded,
no per-row Python); ``read_events`` fetches each chunk of rows as one bytea and decodes it with
``np.frombuffer`` (winnow.data.postgres_event_log). Layout: winnow.data.postgres_schema; row
shaping shared with the SQLite store: winnow.data.store_rows.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pandas as pd
import psycopg

from winnow.core.errors import StoreError, StoreUnavailableError, UnknownIdError
from winnow.data import postgres_aggregates as agg
from winnow.data import postgres_impressions as pgi
from winnow.data import postgres_schema as pgs
from winnow.data import daily_sql, rollout_sql
from winnow.data import store_rows as shape
from winnow.data.postgres_conn import Connections
from winnow.data.postgres_event_log import read_event_log
from winnow.data.postgres_keys import key_ids
from winnow.data.schema import ITEM_COLUMNS, USER_COLUMNS
from winnow.data.rollouts import Rollout, RolloutDecision
from winnow.data.store import EventLog, Store, in_given_order
from winnow.data.store_errors import maps_driver_errors
from winnow.data.validate import normalize_events, normalize_items, normalize_users

_COPY_CHUNK = 1 << 23    # bytes per COPY write
_BULK_ROWS = 100_000     # COPY batches this large refresh statistics (and may rebuild an index)


def _driver_error(store: PostgresStore, exc: Exception) -> StoreError:
    """A psycopg (or OS) error escaping a store call (the pooled ``read`` / ``write`` map their
    own): classified as those are (StoreUnavailableError for an outage), naming the server."""
    if isinstance(exc, OSError):
        return StoreUnavailableError(f"PostgreSQL {store.server} unavailable: {type(exc).__name__}: {exc}")
    return store._db.error(exc, write=False, committing=False, cut_off=False)


@maps_driver_errors((psycopg.Error, OSError), _driver_error)
class PostgresStore(Store):
    """Store in one PostgreSQL database (tables created if missing).

    Args:
        url: ``postgresql://user[:password]@host:port/dbname[?libpq params]``; winnow's own
            query parameters: ``pool_min`` (1), ``pool_max`` (8) connections, ``pool_timeout``
            (5 s: how long a call waits for a connection before StoreUnavailableError),
            ``op_timeout`` (30 s: a call gets no answer for that long -> StoreUnavailableError;
            batch writes get 1 s more per 10,000 rows; bulk reads are unbounded; 0: no limit).
            ``connect_timeout`` defaults to 5 s.
    Raises ConfigError for a bad URL, StoreUnavailableError when the server cannot be reached.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self._db = Connections(url)
        self.server = self._db.server
        try:
            self._write(self._create_schema)
            if self._read(agg.pending):  # a store from before the per-day aggregates: one unbounded pass
                self._db.write(agg.backfill, pgs.LOCK_KEY, timeout=0)
        except BaseException:
            self._db.close()
            raise

    @staticmethod
    def _create_schema(cur: Any) -> None:
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (pgs.LOCK_KEY,))  # replicas starting together
        cur.execute(pgs.DDL + agg.DDL)
        cur.execute("INSERT INTO winnow_meta VALUES ('schema_version', %s) ON CONFLICT DO NOTHING",
                    (pgs.SCHEMA_VERSION,))

    # --- transactions (winnow.data.postgres_conn) -------------------------------------------
    def _write(self, fn: Any, *args: Any, rows: int = 0) -> Any:
        return self._db.write(fn, *args, timeout=self._db.deadline(rows))

    def _read(self, fn: Any, *args: Any, bounded: bool = True) -> Any:
        return self._db.read(fn, *args, bounded=bounded)

    def _rows(self, sql: str, params: tuple = (), *, bounded: bool = True) -> list[tuple]:
        return self._read(lambda cur: cur.execute(sql, params).fetchall(), bounded=bounded)

    def close(self) -> None:
        self._db.close()

    # --- writes -----------------------------------------------------------------------------
    @staticmethod
    def _insert_events(cur: Any, ev: pd.DataFrame) -> int:
        if not len(ev):
            return 0
        uid = key_ids(cur, "user_keys", ev["user_id"])
        iid = key_ids(cur, "item_keys", ev["item_id"])
        tid = key_ids(cur, "event_types", ev["event_type"])
        value = ev["value"].to_numpy(np.float64)
        ts = ev["timestamp"].to_numpy(np.int64)
        if ev["event_id"].isna().all() and ev["context"].isna().all():  # bulk path: binary COPY
            big = len(ev) >= _BULK_ROWS
            # a batch larger than the table: build the secondary indexes once, sorted, instead of
            # row by row (same transaction; its ACCESS EXCLUSIVE lock makes other sessions' event
            # reads wait until COMMIT instead of seeing the indexes missing)
            rebuild = big and len(ev) >= cur.execute(
                "SELECT greatest(reltuples, 0) FROM pg_class WHERE oid = 'events'::regclass").fetchone()[0]
            if rebuild:
                cur.execute("DROP INDEX IF EXISTS " + ", ".join(pgs.REBUILT_INDEXES))
            data = pgs.encode_events(uid, iid, tid, value, ts)
            with cur.copy("COPY events (uid, iid, tid, value, ts) FROM STDIN (FORMAT BINARY)") as copy:
                copy.write(pgs.COPY_HEADER)
                for start in range(0, len(data), _COPY_CHUNK):
                    copy.write(data[start:start + _COPY_CHUNK])
                copy.write(pgs.COPY_TRAILER)
            if rebuild:
                cur.execute("SET LOCAL maintenance_work_mem = '256MB'")
                for ddl in pgs.REBUILT_INDEXES.values():
                    cur.execute(ddl)
            if big:  # fresh statistics, or the planner sorts read_events' scan on disk (measured 2x slower)
                cur.execute("ANALYZE events")
            agg.add_events(cur, iid, tid, ts)  # Store.item_daily's counts, same transaction
            return len(ev)
        ctx = ev["context"].tolist()
        req = [None if c is None else json.loads(c).get("request_id") for c in ctx]
        # ON CONFLICT skips event_ids already stored and repeats inside the batch (first one wins)
        cur.execute(
            "INSERT INTO events (uid, iid, tid, value, ts, event_id, context, request_id) "
            "SELECT uid, iid, tid, value, ts, eid, ctx, req FROM unnest(%s::int4[], %s::int4[], %s::int2[], "
            "%s::float8[], %s::int8[], %s::text[], %s::text[], %s::text[]) WITH ORDINALITY "
            "AS r(uid, iid, tid, value, ts, eid, ctx, req, o) ORDER BY o "
            "ON CONFLICT (event_id) WHERE event_id IS NOT NULL DO NOTHING RETURNING iid, tid, ts",
            (uid.tolist(), iid.tolist(), tid.tolist(), value.tolist(), ts.tolist(),
             [None if e is None or e is pd.NA else str(e) for e in ev["event_id"].tolist()], ctx,
             [None if r is None else str(r) for r in req]))
        added = np.asarray(cur.fetchall(), np.int64).reshape(-1, 3)  # the rows inserted, not the skipped
        agg.add_events(cur, added[:, 0], added[:, 1], added[:, 2])
        return len(added)

    @staticmethod
    def _upsert_items(cur: Any, items: pd.DataFrame) -> int:
        from psycopg.types.json import Jsonb

        iid = key_ids(cur, "item_keys", items["item_id"])
        rows = [(int(i), r[1], r[2], Jsonb(list(r[3])), r[4], shape.opt_int(r[5]), bool(r[6]), bool(r[7]),
                 Jsonb(r[8]))
                for i, r in zip(iid, items[list(ITEM_COLUMNS)].itertuples(index=False, name=None))]
        cur.executemany(
            "INSERT INTO items VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (iid) DO UPDATE SET "
            "title = EXCLUDED.title, text = EXCLUDED.text, categories = EXCLUDED.categories, "
            "creator = EXCLUDED.creator, created_at = EXCLUDED.created_at, available = EXCLUDED.available, "
            "sponsored = EXCLUDED.sponsored, attributes = EXCLUDED.attributes", rows)
        return len(rows)

    @staticmethod
    def _upsert_users(cur: Any, users: pd.DataFrame) -> int:
        from psycopg.types.json import Jsonb

        uid = key_ids(cur, "user_keys", users["user_id"])
        rows = [(int(u), shape.opt_int(r[1]), Jsonb(r[2]), Jsonb(list(r[3])))
                for u, r in zip(uid, users[list(USER_COLUMNS)].itertuples(index=False, name=None))]
        cur.executemany("INSERT INTO users VALUES (%s, %s, %s, %s) ON CONFLICT (uid) DO UPDATE SET "
                        "created_at = EXCLUDED.created_at, attributes = EXCLUDED.attributes, "
                        "interests = EXCLUDED.interests", rows)
        return len(rows)

    def append_events(self, events: pd.DataFrame, *, source: str = "events") -> int:
        ev = normalize_events(events, source=source)
        return self._write(self._insert_events, ev, rows=len(ev))

    def upsert_items(self, items: pd.DataFrame, *, source: str = "items") -> int:
        it = normalize_items(items, source=source)
        return self._write(self._upsert_items, it, rows=len(it))

    def upsert_users(self, users: pd.DataFrame, *, source: str = "users") -> int:
        us = normalize_users(users, source=source)
        return self._write(self._upsert_users, us, rows=len(us))

    def import_all(self, *, events: pd.DataFrame | None = None, items: pd.DataFrame | None = None,
                   users: pd.DataFrame | None = None, source: str = "import") -> dict[str, int]:
        # validate everything before the transaction starts: a bad row writes nothing
        it = normalize_items(items, source=f"{source}:items") if items is not None else None
        us = normalize_users(users, source=f"{source}:users") if users is not None else None
        ev = normalize_events(events, source=f"{source}:events") if events is not None else None

        def run(cur: Any) -> dict[str, int]:
            return {"items": self._upsert_items(cur, it) if it is not None else 0,
                    "users": self._upsert_users(cur, us) if us is not None else 0,
                    "events": self._insert_events(cur, ev) if ev is not None else 0}
        return self._write(run, rows=sum(len(f) for f in (it, us, ev) if f is not None))

    def patch_item(self, item_id: str, *, available: bool | None = None,
                   sponsored: bool | None = None, attributes: dict[str, Any] | None = None) -> None:
        from psycopg.types.json import Jsonb

        def run(cur: Any) -> None:
            cur.execute("UPDATE items i SET available = coalesce(%s::boolean, i.available), "
                        "sponsored = coalesce(%s::boolean, i.sponsored), attributes = i.attributes || %s::jsonb "
                        "FROM item_keys k WHERE k.id = i.iid AND k.external = %s",
                        (available, sponsored, Jsonb(dict(attributes or {})), str(item_id)))
            if cur.rowcount == 0:
                raise UnknownIdError("item", item_id)
        self._write(run)

    def delete_user(self, user_id: str) -> dict[str, Any]:
        """Erase one user in one transaction: events, profile, impressions (also out of the
        per-day aggregates); the external id in ``user_keys`` becomes an unguessable tombstone
        (``erased:<hex>``). Deleted rows stay in
        the table files as dead tuples until (auto)VACUUM reclaims them."""
        def run(cur: Any) -> dict[str, Any]:
            cur.execute("SELECT id FROM user_keys WHERE external = %s FOR UPDATE", (str(user_id),))
            row = cur.fetchone()
            out: dict[str, Any] = {"user_id": str(user_id), "found": row is not None, "events": 0,
                                   "profile": False, "impressions": 0}
            # rows deleted and taken out of item_daily's aggregates (postgres_aggregates.erase)
            out["impressions"], out["events"] = agg.erase(cur, None if row is None else row[0], str(user_id))
            if row is None:
                out["found"] = out["impressions"] > 0
                return out
            out["profile"] = cur.execute("DELETE FROM users WHERE uid = %s", (row[0],)).rowcount > 0
            cur.execute("UPDATE user_keys SET external = %s WHERE id = %s", (f"erased:{secrets.token_hex(16)}", row[0]))
            return out
        return self._write(run)

    def log_impressions(self, impressions: list[dict[str, Any]]) -> None:
        """Store served slates; a request_id already stored is skipped (idempotent retries)."""
        from psycopg.types.json import Jsonb

        rows = shape.impression_rows(impressions, encode=Jsonb)

        def run(cur: Any) -> None:
            cur.execute("INSERT INTO impressions (request_id, user_id, ts, model_version, surface, context, items) "
                        "SELECT r, u, t, m, s, c, i FROM unnest(%s::text[], %s::text[], %s::int8[], %s::text[], "
                        "%s::text[], %b::jsonb[], %b::jsonb[]) WITH ORDINALITY AS x(r, u, t, m, s, c, i, o) "
                        "ORDER BY o ON CONFLICT (request_id) DO NOTHING RETURNING request_id",
                        [list(col) for col in zip(*rows)])
            new = {r[0] for r in cur.fetchall()}  # stored now; a retried or repeated request id counts once
            added = []
            for row, imp in zip(rows, impressions, strict=True):
                if row[0] in new:
                    new.remove(row[0])
                    added.append(imp)
            agg.add_impressions(cur, added)  # Store.item_daily's counts, same transaction
        if rows:
            self._write(run, rows=len(rows))

    # --- reads ------------------------------------------------------------------------------
    def read_events(self, *, since: int | None = None, until: int | None = None) -> EventLog:
        lo = -(2**63) if since is None else int(since)
        hi = 2**63 - 1 if until is None else int(until)
        return self._read(read_event_log, lo, hi, bounded=False)  # a bulk read: no watchdog deadline

    _ITEM_SQL = ("SELECT k.external, i.title, i.text, i.categories, i.creator, i.created_at, i.available, "
                 "i.sponsored, i.attributes FROM items i JOIN item_keys k ON k.id = i.iid")

    def read_items(self) -> pd.DataFrame:
        return shape.items_frame([shape.item_record(r, json_text=False)
                                  for r in self._rows(self._ITEM_SQL + " ORDER BY i.iid", bounded=False)])

    def iter_item_scalars(self, batch: int = shape.SCALARS_BATCH) -> Iterator[pd.DataFrame]:
        sql = ("SELECT k.external, i.creator, i.created_at, i.available, i.sponsored "
               "FROM items i JOIN item_keys k ON k.id = i.iid ORDER BY i.iid")
        return shape.item_scalars_frames(self._read(lambda cur: shape.fetch_batches(cur.execute(sql), batch),
                                                    bounded=False))

    def read_item_scalars(self) -> pd.DataFrame:
        return shape.concat_scalars(self.iter_item_scalars())

    def read_items_by_id(self, item_ids: list[str]) -> pd.DataFrame:
        rows = self._rows(self._ITEM_SQL + " WHERE k.external = ANY(%s)", ([str(i) for i in item_ids],),
                          bounded=False)
        return in_given_order(shape.items_frame([shape.item_record(r, json_text=False) for r in rows]), item_ids)

    def get_item(self, item_id: str) -> dict[str, Any] | None:
        rows = self._rows(self._ITEM_SQL + " WHERE k.external = %s", (str(item_id),))
        return shape.item_record(rows[0], json_text=False) if rows else None

    _USER_SQL = ("SELECT k.external, u.created_at, u.attributes, u.interests FROM user_keys k "
                 "LEFT JOIN users u ON u.uid = k.id")

    def read_users(self) -> pd.DataFrame:
        """Every known user (also those known only from events, with empty attributes)."""
        return shape.users_frame([shape.user_record(r, json_text=False)
                                  for r in self._rows(self._USER_SQL + " ORDER BY k.id", bounded=False)])

    def get_user(self, user_id: str) -> dict[str, Any] | None:
        rows = self._rows(self._USER_SQL + " WHERE k.external = %s", (str(user_id),))
        return shape.user_record(rows[0], json_text=False) if rows else None

    def user_events(self, user_id: str, *, limit: int = 100) -> pd.DataFrame:
        return shape.events_frame(self._rows(
            "SELECT uk.external, ik.external, t.external, e.value, e.ts, e.event_id, e.context "
            "FROM user_keys uk JOIN events e ON e.uid = uk.id JOIN item_keys ik ON ik.id = e.iid "
            "JOIN event_types t ON t.id = e.tid WHERE uk.external = %s ORDER BY e.ts DESC, e.seq DESC "
            "LIMIT %s", (str(user_id), int(limit))))

    def read_impressions(self, *, since: int | None = None) -> list[dict[str, Any]]:
        rows = self._rows("SELECT request_id, user_id, ts, model_version, surface, context, items FROM impressions "
                          "WHERE ts >= %s ORDER BY ts, seq", (int(since) if since is not None else -(2**62),),
                          bounded=False)
        return [shape.impression_record(r, json_text=False) for r in rows]

    def item_daily(self, item_id: str, *, first_day: int, days: int) -> dict[str, Any]:
        """Store.item_daily from the per-day aggregates (postgres_aggregates, daily_sql)."""
        return self._read(lambda cur: daily_sql.item_daily(cur, "%s", 0, item_id, first_day=first_day, days=days))

    def read_feedback_events(self, *, event_types: Sequence[str], since: int | None = None,
                             user_sample: int | None = None) -> pd.DataFrame:
        """Store.read_feedback_events as one query (postgres_impressions)."""
        return self._read(pgi.read_feedback_events, event_types, since, user_sample, bounded=False)

    def read_shown_items(self, *, since: int, until: int, user_sample: int | None = None) -> pd.DataFrame:
        """Store.read_shown_items, unnested in SQL (postgres_impressions)."""
        return self._read(pgi.read_shown_items, since, until, user_sample, bounded=False)

    def read_source_scores(self, *, since: int, until: int, user_sample: int | None = None) -> pd.DataFrame:
        """Store.read_source_scores, unnested in SQL (postgres_impressions)."""
        return self._read(pgi.read_source_scores, since, until, user_sample, bounded=False)

    def impression_outcomes(self, *, since: int | None = None) -> pd.DataFrame:
        """Store.impression_outcomes (postgres_impressions)."""
        return self._read(pgi.impression_outcomes, since, bounded=False)

    def read_candidate_sets(self, *, since: int, until: int, user_sample: int | None = None) -> pd.DataFrame:
        """Store.read_candidate_sets, unnested in SQL (postgres_impressions)."""
        return self._read(pgi.read_candidate_sets, since, until, user_sample, bounded=False)

    def sample_impressions(self, *, since: int, until: int, model_version: str | None,
                           limit: int) -> list[dict[str, Any]]:
        """Store.sample_impressions: only the sampled rows are read (postgres_impressions)."""
        return self._read(pgi.sample_impressions, since, until, model_version, limit, bounded=False)

    def count_impressions(self, *, since: int, until: int) -> int:  # on the ts index (postgres_impressions)
        return self._read(pgi.count_impressions, since, until)

    def impressions_after(self, *, after_seq: int, since: int = 0) -> list[tuple[int, dict[str, Any]]]:
        return self._read(rollout_sql.impressions_after, "%s", after_seq, since, False, bounded=False)

    def request_events(self, *, after_seq: int, event_types: Sequence[str]) -> list[tuple[int, str, str, str]]:
        return self._read(rollout_sql.request_events, "%s", after_seq, tuple(event_types), 0, bounded=False)

    # --- rollouts (winnow.data.rollout_sql) -------------------------------------------------
    def start_rollout(self, rollout: Rollout) -> Rollout:
        def run(cur: Any) -> Rollout:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (pgs.ROLLOUT_LOCK_KEY,))  # one start at a time
            return rollout_sql.start(cur, "%s", rollout)
        return self._write(run)

    def rollout(self, rollout_id: int | None = None) -> Rollout | None:
        return self._read(lambda cur: rollout_sql.get(cur, "%s", rollout_id))

    def update_rollout(self, rollout_id: int, *, revision: int, changes: dict[str, Any],
                       decision: RolloutDecision | None = None) -> Rollout | None:
        return self._write(lambda cur: rollout_sql.update(cur, "%s", rollout_id, revision=revision,
                                                          changes=changes, decision=decision))

    def log_shadow(self, rollout_id: int, records: list[dict[str, Any]]) -> None:
        if records:
            self._write(rollout_sql.log_shadow, "%s", rollout_id, records)

    def read_shadow(self, rollout_id: int, *, limit: int | None = None) -> list[dict[str, Any]]:
        return self._read(lambda cur: rollout_sql.read_shadow(cur, "%s", rollout_id, limit), bounded=False)

    def counts(self) -> dict[str, int]:
        """Events and impressions from the row counts every write keeps (postgres_aggregates)."""
        return self._read(agg.counts)
