"""PostgresStore's reads of the impression log that unnest or sample in SQL instead of decoding
every impression of a window in the caller's process (the Store ABC's generic versions):

- ``read_candidate_sets``: the candidate lists logged in ``context.candidates``, unnested by
  ``jsonb_array_elements_text`` (the drift monitor's candidate-recall input);
- ``sample_impressions``: only the sampled rows leave the server (winnow.data.sample_sql, the
  same query as the SQLite store's, so both backends return the same rows for the same log);
- ``impression_outcomes``: each shown item with the event types that followed its request.

Each function runs inside the caller's read transaction (one REPEATABLE READ snapshot,
``Connections.read``) on a psycopg cursor. Results are shaped exactly as the contract says
(winnow.data.store, winnow.data.store_rows).
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from winnow.data import sample_sql
from winnow.data import store_rows as shape
from winnow.data.store import candidate_frame

_CANDIDATES = ("SELECT i.request_id, i.user_id, c.value, i.ts FROM impressions i "
               "CROSS JOIN LATERAL jsonb_array_elements_text(i.context -> 'candidates') WITH ORDINALITY AS c(value, o) "
               "WHERE i.ts >= %s AND i.ts < %s AND jsonb_typeof(i.context -> 'candidates') = 'array' "
               "ORDER BY i.ts, i.seq, c.o")


def read_candidate_sets(cur: Any, since: int, until: int) -> pd.DataFrame:
    """Store.read_candidate_sets: one row per (impression, logged candidate), oldest first."""
    return candidate_frame(cur.execute(_CANDIDATES, (int(since), int(until))).fetchall())


def sample_impressions(cur: Any, since: int, until: int, model_version: str | None,
                       limit: int) -> list[dict[str, Any]]:
    """Store.sample_impressions (count and sample in the caller's one snapshot)."""
    rows = sample_sql.sample_impression_rows(cur, "%s", since=since, until=until, model_version=model_version,
                                             limit=limit)
    return [shape.impression_record(r, json_text=False) for r in rows]


def impression_outcomes(cur: Any, since: int | None) -> pd.DataFrame:
    """Store.impression_outcomes: one row per shown item (same contract as SQLiteStore's), the
    item's slate fields plus ``events``, the event types later logged for that item with the
    same ``context.request_id`` (empty list when nothing followed)."""
    lo = int(since) if since is not None else -(2**62)
    imps = cur.execute("SELECT request_id, user_id, ts, model_version, surface, items FROM impressions "
                       "WHERE ts >= %s ORDER BY ts, seq", (lo,)).fetchall()
    follow_rows = cur.execute(
        "SELECT e.request_id, ik.external, t.external FROM events e JOIN item_keys ik ON ik.id = e.iid "
        "JOIN event_types t ON t.id = e.tid WHERE e.request_id IN "
        "(SELECT request_id FROM impressions WHERE ts >= %s) ORDER BY e.seq", (lo,)).fetchall()
    follow: dict[str, dict[str, list[str]]] = {}  # request_id -> item -> event types
    for req, item, etype in follow_rows:
        follow.setdefault(req, {}).setdefault(item, []).append(etype)
    return shape.outcomes_frame(rec for r in imps
                                for rec in shape.outcome_records(r[:5], r[5], follow.get(r[0], {})))
