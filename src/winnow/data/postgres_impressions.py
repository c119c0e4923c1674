"""PostgresStore's reads of the impression log that unnest or sample in SQL instead of decoding
every impression of a window in the caller's process (the Store ABC's generic versions):

- ``read_shown_items`` / ``read_source_scores``: the slates (and each entry's ``src``) unnested by
  ``jsonb_array_elements`` / ``jsonb_each`` (the drift monitor's served-slate input);
- ``read_candidate_sets``: the candidate lists logged in ``context.candidates``, unnested by
  ``jsonb_array_elements_text`` (the drift monitor's candidate-recall input);
- ``read_feedback_events``: the positive events of a window, only their keys joined;
- each of these four takes ``user_sample`` (winnow.data.user_sample: the same users as the
  SQLite store and the generic versions select, by the md5 bucket of the external user id);
- ``sample_impressions``: only the sampled rows leave the server (winnow.data.sample_sql, the
  same query as the SQLite store's, so both backends return the same rows for the same log);
- ``impression_outcomes``: each shown item with the event types that followed its request.

Each function runs inside the caller's read transaction (one REPEATABLE READ snapshot,
``Connections.read``) on a psycopg cursor. Results are shaped exactly as the contract says
(winnow.data.store, winnow.data.store_rows).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from winnow.data import sample_sql
from winnow.data import store_rows as shape
from winnow.data.store import candidate_frame, shown_frame
from winnow.data.user_sample import check_keep, pg_bucket

_SHOWN = ("SELECT i.user_id, e.value ->> 'item_id', i.ts, (e.value ->> 'score')::float8, i.model_version "
          "FROM impressions i CROSS JOIN LATERAL jsonb_array_elements(i.items) WITH ORDINALITY AS e(value, o) "
          "WHERE i.ts >= %s AND i.ts < %s{} ORDER BY i.ts, i.seq, e.o")
_SOURCES = ("SELECT s.key, (s.value ->> 0)::float8 FROM impressions i "
            "CROSS JOIN LATERAL jsonb_array_elements(i.items) AS e(value) "
            "CROSS JOIN LATERAL jsonb_each(CASE WHEN jsonb_typeof(e.value -> 'src') = 'object' "
            "THEN e.value -> 'src' ELSE '{{}}'::jsonb END) AS s "
            "WHERE i.ts >= %s AND i.ts < %s{}")
_CANDIDATES = ("SELECT i.request_id, i.user_id, c.value, i.ts FROM impressions i "
               "CROSS JOIN LATERAL jsonb_array_elements_text(i.context -> 'candidates') WITH ORDINALITY AS c(value, o) "
               "WHERE i.ts >= %s AND i.ts < %s{} AND jsonb_typeof(i.context -> 'candidates') = 'array' "
               "ORDER BY i.ts, i.seq, c.o")
_FEEDBACK = ("SELECT uk.external, ik.external, t.external, e.ts FROM event_types t JOIN events e ON e.tid = t.id "
             "JOIN user_keys uk ON uk.id = e.uid JOIN item_keys ik ON ik.id = e.iid "
             "WHERE t.external = ANY(%s) AND e.ts >= %s{} ORDER BY e.ts, e.seq")


def _run(cur: Any, sql: str, params: tuple, column: str, user_sample: int | None) -> list[tuple]:
    """``sql`` (one ``{}`` for the user-sample condition on ``column``) with ``params``."""
    keep = check_keep(user_sample)
    cond = f" AND {pg_bucket(column)} < %s" if keep is not None else ""
    return cur.execute(sql.format(cond), params + ((keep,) if keep is not None else ())).fetchall()


def read_shown_items(cur: Any, since: int, until: int, user_sample: int | None) -> pd.DataFrame:
    """Store.read_shown_items: one row per shown slate entry, oldest first."""
    return shown_frame(_run(cur, _SHOWN, (int(since), int(until)), "i.user_id", user_sample))


def read_source_scores(cur: Any, since: int, until: int, user_sample: int | None) -> pd.DataFrame:
    """Store.read_source_scores: one row per (shown entry, source it logged)."""
    rows = _run(cur, _SOURCES, (int(since), int(until)), "i.user_id", user_sample)
    return pd.DataFrame({"source": pd.Series([r[0] for r in rows], dtype=object),
                         "score": np.fromiter((float(r[1]) for r in rows), np.float64, count=len(rows))})


def read_candidate_sets(cur: Any, since: int, until: int, user_sample: int | None = None) -> pd.DataFrame:
    """Store.read_candidate_sets: one row per (impression, logged candidate), oldest first."""
    return candidate_frame(_run(cur, _CANDIDATES, (int(since), int(until)), "i.user_id", user_sample))


def read_feedback_events(cur: Any, event_types: Sequence[str], since: int | None,
                         user_sample: int | None) -> pd.DataFrame:
    """Store.read_feedback_events as one query (only the named types, only their keys)."""
    rows = _run(cur, _FEEDBACK, (list(dict.fromkeys(str(t) for t in event_types)),
                                 -(2**63) if since is None else int(since)), "uk.external", user_sample)
    cols = ["user_id", "item_id", "event_type", "timestamp"]
    frame = pd.DataFrame({c: pd.Series([r[k] for r in rows], dtype=object) for k, c in enumerate(cols[:3])})
    frame["timestamp"] = np.fromiter((r[3] for r in rows), dtype=np.int64, count=len(rows))
    return frame


def sample_impressions(cur: Any, since: int, until: int, model_version: str | None,
                       limit: int) -> list[dict[str, Any]]:
    """Store.sample_impressions (count and sample in the caller's one snapshot)."""
    rows = sample_sql.sample_impression_rows(cur, "%s", since=since, until=until, model_version=model_version,
                                             limit=limit)
    return [shape.impression_record(r, json_text=False) for r in rows]


def count_impressions(cur: Any, since: int, until: int) -> int:
    """Store.count_impressions on the timestamp index (sample_sql)."""
    return sample_sql.count_impressions(cur, "%s", since=since, until=until)


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
