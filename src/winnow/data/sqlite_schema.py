"""Table layout of the embedded SQLite store (winnow.data.sqlite_store): DDL, indexes, and
which SQLite errors mean "cannot write now". Kept apart so the store module holds behaviour only.

Layout: external ids live in key tables (``user_keys``, ``item_keys``, ``event_types``) whose
dense integer ids (rowid - 1, append-only) are what the ``events`` table stores. The ``events``
table serves row access (per-user history, event_id idempotency, request_id joins); the same
transaction also appends the batch's numeric columns as one packed block to ``event_blocks``
(see winnow.data.sqlite_blocks), which ``read_events`` reads at memory speed.
"""

from __future__ import annotations

from winnow.data import sqlite_blocks as blocks

SCHEMA_VERSION = "1"
DDL = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS user_keys (id INTEGER PRIMARY KEY, external TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS item_keys (id INTEGER PRIMARY KEY, external TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS event_types (id INTEGER PRIMARY KEY, external TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS events (
  seq INTEGER PRIMARY KEY, uid INTEGER NOT NULL, iid INTEGER NOT NULL, tid INTEGER NOT NULL,
  value REAL, ts INTEGER NOT NULL, event_id TEXT, context TEXT, request_id TEXT);
CREATE TABLE IF NOT EXISTS items (
  iid INTEGER PRIMARY KEY, title TEXT NOT NULL, text TEXT NOT NULL, categories TEXT NOT NULL,
  creator TEXT NOT NULL, created_at INTEGER, available INTEGER NOT NULL, sponsored INTEGER NOT NULL,
  attributes TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS users (
  uid INTEGER PRIMARY KEY, created_at INTEGER, attributes TEXT NOT NULL, interests TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS impressions (
  seq INTEGER PRIMARY KEY, request_id TEXT NOT NULL UNIQUE, user_id TEXT NOT NULL,
  ts INTEGER NOT NULL, model_version TEXT, surface TEXT, context TEXT NOT NULL, items TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS impressions_ts ON impressions(ts);
CREATE TABLE IF NOT EXISTS row_counts (name TEXT PRIMARY KEY, n INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS event_item_days (
  iid INTEGER NOT NULL, day INTEGER NOT NULL, tid INTEGER NOT NULL, n INTEGER NOT NULL,
  PRIMARY KEY (iid, day, tid)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS impression_item_days (
  item TEXT NOT NULL, day INTEGER NOT NULL, shown INTEGER NOT NULL, position_sum INTEGER NOT NULL,
  PRIMARY KEY (item, day)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS rollouts (
  id INTEGER PRIMARY KEY, running INTEGER NOT NULL, state TEXT NOT NULL, revision INTEGER NOT NULL,
  started INTEGER NOT NULL, body TEXT NOT NULL);
CREATE UNIQUE INDEX IF NOT EXISTS rollouts_one_running ON rollouts(running) WHERE running = 1;
CREATE TABLE IF NOT EXISTS rollout_decisions (
  rollout_id INTEGER NOT NULL, seq INTEGER NOT NULL, body TEXT NOT NULL, PRIMARY KEY (rollout_id, seq));
CREATE TABLE IF NOT EXISTS rollout_shadow (
  seq INTEGER PRIMARY KEY, rollout_id INTEGER NOT NULL, ts INTEGER NOT NULL, body TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS rollout_shadow_id ON rollout_shadow(rollout_id, seq);
""" + blocks.DDL
EVENT_INDEXES = (
    ("events_event_id", "CREATE UNIQUE INDEX IF NOT EXISTS events_event_id ON events(event_id) "
                        "WHERE event_id IS NOT NULL"),
    ("events_user_ts", "CREATE INDEX IF NOT EXISTS events_user_ts ON events(uid, ts)"),
    ("events_request", "CREATE INDEX IF NOT EXISTS events_request ON events(request_id) "
                       "WHERE request_id IS NOT NULL"),
)
# Store.item_daily's aggregates, kept in the transaction that writes the rows: per (item, UTC day,
# event type) the events, per (item, UTC day) the slates that showed the item and the sum of its
# positions. A store opened without them is backfilled once. Erasing a user takes their rows back
# out (a count reaching 0 drops its row), so the aggregates always equal a scan of the logs.
EVENT_DAYS_BACKFILL = """
INSERT INTO event_item_days(iid, day, tid, n)
SELECT iid, ts / 86400 - (ts % 86400 < 0), tid, count(*) FROM events GROUP BY 1, 2, 3
"""
# rows of the two growing tables, kept in the transactions that add or delete them (Store.counts)
ROW_COUNTS_BACKFILL = """
INSERT OR REPLACE INTO row_counts(name, n) SELECT 'events', count(*) FROM events
UNION ALL SELECT 'impressions', count(*) FROM impressions
"""
ROW_COUNT_ADD = ("INSERT INTO row_counts(name, n) VALUES (?, ?) "
                 "ON CONFLICT(name) DO UPDATE SET n = n + excluded.n")
EVENT_DAYS_UPSERT = (
    "INSERT INTO event_item_days(iid, day, tid, n) VALUES (?, ?, ?, ?) "
    "ON CONFLICT(iid, day, tid) DO UPDATE SET n = n + excluded.n")
IMPRESSION_DAYS_BACKFILL = """
INSERT INTO impression_item_days(item, day, shown, position_sum)
SELECT json_extract(j.value, '$.item_id'), i.ts / 86400 - (i.ts % 86400 < 0), count(*),
       sum(json_extract(j.value, '$.position'))
FROM impressions i, json_each(i.items) j GROUP BY 1, 2
"""
IMPRESSION_DAYS_UPSERT = (
    "INSERT INTO impression_item_days(item, day, shown, position_sum) VALUES (?, ?, ?, ?) "
    "ON CONFLICT(item, day) DO UPDATE SET shown = shown + excluded.shown, "
    "position_sum = position_sum + excluded.position_sum")
# primary SQLite result codes that mean "cannot write now" -> StoreUnavailableError (HTTP 503)
UNAVAILABLE = {5: "SQLITE_BUSY", 8: "SQLITE_READONLY", 10: "SQLITE_IOERR", 13: "SQLITE_FULL",
               14: "SQLITE_CANTOPEN"}
