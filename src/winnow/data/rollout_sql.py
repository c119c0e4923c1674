"""The rollout queries both SQL stores run (winnow.data.rollouts has the layout and the types).

Each function takes an open cursor/connection inside the caller's write (or read) transaction
and ``ph``, the driver's placeholder ("?" for sqlite3, "%s" for psycopg); the SQL is otherwise
the same on both. ``start`` must run in a transaction that excludes concurrent starts (SQLite:
BEGIN IMMEDIATE; PostgreSQL: an advisory transaction lock), so "at most one running" is checked
and kept atomically (the partial unique index is the backstop).
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from winnow.core.errors import RolloutError
from winnow.data import store_rows as shape
from winnow.data.rollouts import (
    Rollout,
    RolloutDecision,
    apply_changes,
    body_json,
    clean,
    decision_json,
    rollout_from_row,
)

_COLS = "id, state, revision, started, body"


def _load(cur: Any, ph: str, row: tuple | None) -> Rollout | None:
    if row is None:
        return None
    decisions = [r[0] for r in cur.execute(
        f"SELECT body FROM rollout_decisions WHERE rollout_id = {ph} ORDER BY seq", (row[0],)).fetchall()]
    return rollout_from_row(tuple(row), decisions)


def get(cur: Any, ph: str, rollout_id: int | None) -> Rollout | None:
    """Rollout ``rollout_id``; None: the running one, else the most recent."""
    if rollout_id is not None:
        row = cur.execute(f"SELECT {_COLS} FROM rollouts WHERE id = {ph}", (int(rollout_id),)).fetchone()
    else:
        row = cur.execute(f"SELECT {_COLS} FROM rollouts ORDER BY running DESC, id DESC LIMIT 1").fetchone()
    return _load(cur, ph, row)


def _add_decision(cur: Any, ph: str, rollout_id: int, d: RolloutDecision) -> None:
    cur.execute(f"INSERT INTO rollout_decisions (rollout_id, seq, body) VALUES ({ph}, "
                f"(SELECT coalesce(max(seq), 0) + 1 FROM rollout_decisions WHERE rollout_id = {ph}), {ph})",
                (rollout_id, rollout_id, decision_json(d)))


def start(cur: Any, ph: str, r: Rollout) -> Rollout:
    """Insert ``r`` (id/revision assigned) with ``r.decisions``; RolloutError(409) when one runs."""
    running = cur.execute(f"SELECT {_COLS} FROM rollouts WHERE running = {ph}", (True,)).fetchone()
    if running is not None:
        other = rollout_from_row(tuple(running), [])
        raise RolloutError(f"rollout {other.id} ({other.state} of {other.challenger}) is running: "
                           "promote or abort it first; nothing was changed")
    row = cur.execute(f"INSERT INTO rollouts (running, state, revision, started, body) "
                      f"VALUES ({ph}, {ph}, 1, {ph}, {ph}) RETURNING id",
                      (r.running, r.state, int(r.started), body_json(r))).fetchone()
    new = replace(r, id=int(row[0]), revision=1)
    for d in r.decisions:
        _add_decision(cur, ph, new.id, d)
    return new


def update(cur: Any, ph: str, rollout_id: int, *, revision: int, changes: dict[str, Any],
           decision: RolloutDecision | None) -> Rollout | None:
    """Compare-and-set: apply ``changes`` (+ ``decision``) if the row is still at ``revision``;
    None when another writer moved it first (nothing written); RolloutError(404) if absent."""
    current = get(cur, ph, rollout_id)
    if current is None:
        raise RolloutError(f"no rollout {rollout_id}", status=404)
    if current.revision != revision:
        return None
    new = apply_changes(current, changes)
    n = cur.execute(f"UPDATE rollouts SET running = {ph}, state = {ph}, revision = {ph}, body = {ph} "
                    f"WHERE id = {ph} AND revision = {ph}",
                    (new.running, new.state, new.revision, body_json(new), rollout_id, revision)).rowcount
    if n != 1:
        return None
    if decision is not None:
        _add_decision(cur, ph, rollout_id, decision)
        new = replace(new, decisions=(*new.decisions, decision))
    return new


def log_shadow(cur: Any, ph: str, rollout_id: int, records: list[dict[str, Any]]) -> None:
    rows = [(int(rollout_id), int(rec.get("ts", 0)), json.dumps(clean(rec), allow_nan=False)) for rec in records]
    cur.executemany(f"INSERT INTO rollout_shadow (rollout_id, ts, body) VALUES ({ph}, {ph}, {ph})", rows)


def read_shadow(cur: Any, ph: str, rollout_id: int, limit: int | None) -> list[dict[str, Any]]:
    """Shadow records of ``rollout_id``, oldest first (the newest ``limit`` when given)."""
    if limit is None:
        rows = cur.execute(f"SELECT body FROM rollout_shadow WHERE rollout_id = {ph} ORDER BY seq",
                           (int(rollout_id),)).fetchall()
    else:
        rows = cur.execute(f"SELECT body FROM rollout_shadow WHERE rollout_id = {ph} ORDER BY seq DESC "
                           f"LIMIT {ph}", (int(rollout_id), int(limit))).fetchall()[::-1]
    return [json.loads(r[0]) for r in rows]


def request_events(cur: Any, ph: str, after_seq: int, event_types: tuple[str, ...], key_offset: int
                   ) -> list[tuple[int, str, str, str]]:
    """(seq, request_id, item id, event type) of the events with ``seq > after_seq`` that carry a
    request id and have one of ``event_types``, in seq order. ``key_offset``: what the store adds
    to an event's iid / tid to get its key table id (SQLite 1, PostgreSQL 0)."""
    if not event_types:
        return []
    marks = ", ".join([ph] * len(event_types))
    return [(int(r[0]), str(r[1]), str(r[2]), str(r[3])) for r in cur.execute(
        f"SELECT e.seq, e.request_id, ik.external, t.external FROM events e "
        f"JOIN item_keys ik ON ik.id = e.iid + {int(key_offset)} JOIN event_types t ON t.id = e.tid + {int(key_offset)} "
        f"WHERE e.seq > {ph} AND e.request_id IS NOT NULL AND t.external IN ({marks}) ORDER BY e.seq",
        (int(after_seq), *event_types)).fetchall()]


def impressions_after(cur: Any, ph: str, after_seq: int, since: int, json_text: bool
                      ) -> list[tuple[int, dict[str, Any]]]:
    """(seq, impression) of the impressions with ``seq > after_seq`` and ``ts >= since``, in seq
    order; ``json_text``: the driver returns the JSON columns as text (SQLite)."""
    rows = cur.execute(f"SELECT seq, request_id, user_id, ts, model_version, surface, context, items "
                       f"FROM impressions WHERE seq > {ph} AND ts >= {ph} ORDER BY seq",
                       (int(after_seq), int(since))).fetchall()
    return [(int(r[0]), shape.impression_record(r[1:], json_text=json_text)) for r in rows]
