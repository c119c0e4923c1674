"""The queries of ``Store.sample_impressions`` and ``Store.count_impressions`` both SQL stores
run: only the sampled rows leave the database (``row_number()`` over the window), and they are
exactly the rows the contract's generic version picks; the count reads the timestamp index only.

Contract (winnow.data.store.Store.sample_impressions): of the n impressions with since <= ts <
until logged by ``model_version`` (None: any; a NULL version matches ""), in (ts, store sequence)
order, every ceil(n / limit)-th starting with the first, at most ``limit``. The count and the
sample must come from one snapshot (SQLite: one read; PostgreSQL: the caller's REPEATABLE READ
transaction). ``ph`` is the driver's placeholder ("?" for sqlite3, "%s" for psycopg), as in
winnow.data.rollout_sql.
"""

from __future__ import annotations

from typing import Any

_COLUMNS = "request_id, user_id, ts, model_version, surface, context, items"


def _window(ph: str, since: int, until: int, model_version: str | None) -> tuple[str, tuple]:
    """The FROM/WHERE clause of the impressions with since <= ts < until logged by
    ``model_version`` (None: any, a condition on ts alone, which the timestamp index answers
    without reading a row; a NULL version matches ""), and its parameters."""
    window = f"FROM impressions WHERE ts >= {ph} AND ts < {ph}"
    if model_version is None:
        return window, (int(since), int(until))
    return window + f" AND COALESCE(model_version, '') = {ph}", (int(since), int(until), str(model_version))


def count_impressions(con: Any, ph: str, *, since: int, until: int, model_version: str | None = None) -> int:
    """How many impressions have since <= ts < until (logged by ``model_version``, as in
    ``sample_impression_rows``; None: any): Store.count_impressions, an index range count on
    either store (SQLite's ``impressions_ts``, PostgreSQL's ``impressions_ts``), no slate decoded."""
    window, args = _window(ph, since, until, model_version)
    return int(con.execute("SELECT count(*) " + window, args).fetchone()[0])


def sample_impression_rows(con: Any, ph: str, *, since: int, until: int, model_version: str | None,
                           limit: int) -> list[tuple]:
    """The raw rows (``_COLUMNS`` order) of Store.sample_impressions; the caller shapes them.
    Raises ValueError for ``limit`` < 1."""
    if limit < 1:
        raise ValueError(f"sample_impressions: limit must be >= 1, got {limit}")
    mod = "%%" if ph == "%s" else "%"  # psycopg reads a bare % as a placeholder
    window, args = _window(ph, since, until, model_version)
    n = count_impressions(con, ph, since=since, until=until, model_version=model_version)
    if not n:
        return []
    sql = (f"SELECT {_COLUMNS} FROM (SELECT {_COLUMNS}, ts AS t, seq, row_number() OVER (ORDER BY ts, seq) AS rn "
           f"{window}) w WHERE (rn - 1) {mod} {ph} = 0 ORDER BY t, seq LIMIT {ph}")
    return con.execute(sql, (*args, -(-n // limit), int(limit))).fetchall()
