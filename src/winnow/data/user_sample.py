"""A deterministic sample of users, the same in Python, SQLite and PostgreSQL.

A user's bucket is the first 32 bits of the md5 of its external id (UTF-8), modulo ``BUCKETS``;
a sample of ``keep`` buckets (0 < keep <= BUCKETS) holds the users whose bucket is below
``keep``: about ``keep / BUCKETS`` of them, always the same ones, with every row of each (so
per-user statistics -- the share of a user's positives on items shown to that user, per-user
activity -- are estimated without bias, unlike a sample of rows). The drift monitor's served-slate
reads take one when the window is large (``[drift] served_max_events``), so their memory and CPU
stop growing with the traffic.

- Python: ``bucket(user_id)``, ``in_sample(user_ids, keep)`` (a bool mask);
- SQLite: ``register(con)`` adds the SQL function ``winnow_user_bucket(text)``;
- PostgreSQL: ``pg_bucket(column)``, an SQL expression (md5 is built in).
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Sequence

import numpy as np

BUCKETS = 10_000
SQLITE_FN = "winnow_user_bucket"


def bucket(user_id: object) -> int:
    """The user's bucket in [0, BUCKETS)."""
    return int(hashlib.md5(str(user_id).encode("utf-8")).hexdigest()[:8], 16) % BUCKETS


def in_sample(user_ids: Sequence[object], keep: int | None) -> np.ndarray:
    """bool [n]: which of ``user_ids`` the sample of ``keep`` buckets holds (all when None);
    each distinct id is hashed once."""
    if keep is None or keep >= BUCKETS:
        return np.ones(len(user_ids), bool)
    memo: dict[object, bool] = {}
    out = np.empty(len(user_ids), bool)
    for j, u in enumerate(user_ids):
        hit = memo.get(u)
        if hit is None:
            hit = memo[u] = bucket(u) < keep
        out[j] = hit
    return out


def register(con: sqlite3.Connection) -> None:
    """Add ``winnow_user_bucket(text) -> int`` to an SQLite connection (deterministic)."""
    con.create_function(SQLITE_FN, 1, bucket, deterministic=True)


def pg_bucket(column: str) -> str:
    """The bucket of ``column`` (a text column or expression) as a PostgreSQL expression."""
    return f"mod(('x' || substr(md5({column}), 1, 8))::bit(32)::bigint, {BUCKETS})"  # mod(): no % to escape


def check_keep(keep: int | None) -> int | None:
    """``keep`` validated: None (every user) or 1..BUCKETS; ValueError naming it otherwise."""
    if keep is not None and not (isinstance(keep, int) and 1 <= keep <= BUCKETS):
        raise ValueError(f"user sample: keep must be None or an int in 1..{BUCKETS}, got {keep!r}")
    return keep
