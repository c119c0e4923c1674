"""SQLiteStore.read_shown_items / read_source_scores / read_candidate_sets: the slates (and the
sampled candidate sets in the context) unnested by SQLite's JSON functions (``json_each`` over
the stored text, in C) instead of decoding every impression in Python -- the Store ABC's
default, which took ~60% of a live drift comparison (bench/drift_cost.py). (``sample_impressions``:
winnow.data.sample_sql, shared with the PostgreSQL store.)"""

from __future__ import annotations

import sqlite3

import numpy as np
import pandas as pd

from winnow.data.store import candidate_frame, shown_frame
from winnow.data.user_sample import SQLITE_FN, check_keep

_SAMPLE = f" AND {SQLITE_FN}(i.user_id) < ?"  # the connection has the function (user_sample.register)
_SHOWN = ("SELECT i.user_id, json_extract(j.value, '$.item_id'), i.ts, json_extract(j.value, '$.score'), "
          "i.model_version FROM impressions i, json_each(i.items) j WHERE i.ts >= ? AND i.ts < ?{} "
          "ORDER BY i.ts, i.seq, j.key")
_SOURCES = ("SELECT s.key, json_extract(s.value, '$[0]') FROM impressions i, json_each(i.items) j, "
            "json_each(j.value, '$.src') s WHERE i.ts >= ? AND i.ts < ?{} AND json_type(j.value, '$.src') = 'object'")

_CANDIDATES = ("SELECT i.request_id, i.user_id, c.value, i.ts FROM impressions i, json_each(i.context, '$.candidates') c "
               "WHERE i.ts >= ? AND i.ts < ?{} AND json_type(i.context, '$.candidates') = 'array' "
               "ORDER BY i.ts, i.seq, c.key")


def _run(con: sqlite3.Connection, sql: str, since: int, until: int, user_sample: int | None) -> list[tuple]:
    """``sql`` (with one ``{}`` for the user-sample condition) over [since, until)."""
    keep = check_keep(user_sample)
    params: tuple[int, ...] = (int(since), int(until)) + ((keep,) if keep is not None else ())
    return con.execute(sql.format(_SAMPLE if keep is not None else ""), params).fetchall()


def read_shown_items(con: sqlite3.Connection, *, since: int, until: int, user_sample: int | None = None) -> pd.DataFrame:
    """Store.read_shown_items (winnow.data.store)."""
    return shown_frame(_run(con, _SHOWN, since, until, user_sample))


def read_source_scores(con: sqlite3.Connection, *, since: int, until: int,
                       user_sample: int | None = None) -> pd.DataFrame:
    """Store.read_source_scores (winnow.data.store)."""
    rows = _run(con, _SOURCES, since, until, user_sample)
    return pd.DataFrame({"source": pd.Series([r[0] for r in rows], dtype=object),
                         "score": np.fromiter((float(r[1]) for r in rows), np.float64, count=len(rows))})


def read_candidate_sets(con: sqlite3.Connection, *, since: int, until: int,
                        user_sample: int | None = None) -> pd.DataFrame:
    """Store.read_candidate_sets (winnow.data.store)."""
    return candidate_frame(_run(con, _CANDIDATES, since, until, user_sample))
