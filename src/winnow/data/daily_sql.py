"""The read of ``Store.item_daily`` both SQL stores run on their per-day aggregates
(``event_item_days``, ``impression_item_days``: winnow.data.sqlite_schema, winnow.data.postgres_aggregates):
two primary-key range reads of at most days x event types + days rows, whatever the item's
popularity.

``ph`` is the driver's placeholder ("?" for sqlite3, "%s" for psycopg); ``key_base`` is the
stored id of a key table's first row minus the id the aggregates store (SQLite: rowid - 1 -> 1;
PostgreSQL: the identity id itself -> 0).
"""

from __future__ import annotations

from typing import Any


def item_daily(con: Any, ph: str, key_base: int, item_id: str, *, first_day: int, days: int) -> dict[str, Any]:
    """Store.item_daily: {"events": {type: [count per day]}, "impressions": [per day], "position_sum"}
    for UTC days first_day .. first_day + days - 1 (one read transaction when the caller opened one)."""
    span = (str(item_id), int(first_day), int(first_day) + int(days))
    events: dict[str, list[int]] = {}
    for name, d, n in con.execute(
            f"SELECT t.external, a.day, a.n FROM event_item_days a JOIN event_types t ON t.id = a.tid + {key_base} "
            f"WHERE a.iid = (SELECT id - {key_base} FROM item_keys WHERE external = {ph}) "
            f"AND a.day >= {ph} AND a.day < {ph}", span).fetchall():
        events.setdefault(str(name), [0] * days)[int(d) - first_day] += int(n)
    shown, pos_sum = [0] * days, 0
    for d, n, p in con.execute(f"SELECT day, shown, position_sum FROM impression_item_days "
                               f"WHERE item = {ph} AND day >= {ph} AND day < {ph}", span).fetchall():
        shown[int(d) - first_day] = int(n)
        pos_sum += int(p)
    return {"events": events, "impressions": shown, "position_sum": pos_sum}
