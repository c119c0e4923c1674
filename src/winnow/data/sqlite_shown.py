"""SQLiteStore.read_shown_items / read_source_scores: the slates unnested by SQLite's JSON
functions (``json_each`` over the stored ``items`` text, in C) instead of decoding every
impression in Python -- the Store ABC's default, which took ~60% of a live drift comparison
(bench/drift_cost.py)."""

from __future__ import annotations

import sqlite3

import numpy as np
import pandas as pd

from winnow.data.store import shown_frame

_SHOWN = ("SELECT i.user_id, json_extract(j.value, '$.item_id'), i.ts, json_extract(j.value, '$.score'), "
          "i.model_version FROM impressions i, json_each(i.items) j WHERE i.ts >= ? AND i.ts < ? "
          "ORDER BY i.ts, i.seq, j.key")
_SOURCES = ("SELECT s.key, json_extract(s.value, '$[0]') FROM impressions i, json_each(i.items) j, "
            "json_each(j.value, '$.src') s WHERE i.ts >= ? AND i.ts < ? AND json_type(j.value, '$.src') = 'object'")


def read_shown_items(con: sqlite3.Connection, *, since: int, until: int) -> pd.DataFrame:
    """Store.read_shown_items (winnow.data.store)."""
    return shown_frame(con.execute(_SHOWN, (int(since), int(until))).fetchall())


def read_source_scores(con: sqlite3.Connection, *, since: int, until: int) -> pd.DataFrame:
    """Store.read_source_scores (winnow.data.store)."""
    rows = con.execute(_SOURCES, (int(since), int(until))).fetchall()
    return pd.DataFrame({"source": pd.Series([r[0] for r in rows], dtype=object),
                         "score": np.fromiter((float(r[1]) for r in rows), np.float64, count=len(rows))})
