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

_SHOWN = ("SELECT i.user_id, json_extract(j.value, '$.item_id'), i.ts, json_extract(j.value, '$.score'), "
          "i.model_version FROM impressions i, json_each(i.items) j WHERE i.ts >= ? AND i.ts < ? "
          "ORDER BY i.ts, i.seq, j.key")
_SOURCES = ("SELECT s.key, json_extract(s.value, '$[0]') FROM impressions i, json_each(i.items) j, "
            "json_each(j.value, '$.src') s WHERE i.ts >= ? AND i.ts < ? AND json_type(j.value, '$.src') = 'object'")

_CANDIDATES = ("SELECT i.request_id, i.user_id, c.value, i.ts FROM impressions i, json_each(i.context, '$.candidates') c "
               "WHERE i.ts >= ? AND i.ts < ? AND json_type(i.context, '$.candidates') = 'array' ORDER BY i.ts, i.seq, c.key")


def read_shown_items(con: sqlite3.Connection, *, since: int, until: int) -> pd.DataFrame:
    """Store.read_shown_items (winnow.data.store)."""
    return shown_frame(con.execute(_SHOWN, (int(since), int(until))).fetchall())


def read_source_scores(con: sqlite3.Connection, *, since: int, until: int) -> pd.DataFrame:
    """Store.read_source_scores (winnow.data.store)."""
    rows = con.execute(_SOURCES, (int(since), int(until))).fetchall()
    return pd.DataFrame({"source": pd.Series([r[0] for r in rows], dtype=object),
                         "score": np.fromiter((float(r[1]) for r in rows), np.float64, count=len(rows))})


def read_candidate_sets(con: sqlite3.Connection, *, since: int, until: int) -> pd.DataFrame:
    """Store.read_candidate_sets (winnow.data.store)."""
    return candidate_frame(con.execute(_CANDIDATES, (int(since), int(until))).fetchall())
