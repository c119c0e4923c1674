"""Validation and normalisation of events, items and users frames (before anything is stored).

Contract:
- ``find_problems(events, ...)`` returns every problem as a ``DataError`` (ordered by line),
  so the HTTP API can report all bad rows at once.
- ``normalize_events(events, ...)`` raises the FIRST problem (lowest line) and otherwise returns
  a new frame with exactly ``EVENT_COLUMNS`` in canonical dtypes: ids ``str``, ``event_type``
  ``str``, ``value`` float64 (NaN when absent), ``timestamp`` int64 unix seconds (ISO-8601
  strings are converted), ``event_id`` str or None, ``context`` JSON-object text or None.
- Line numbers: ``line = row position + line_offset``. Files with a header row use
  ``line_offset=2`` (header is line 1); headerless files 1; API batches 0 (row index).
- A frame without an ``event_type`` column gets ``default_event_type`` ("interaction").
- Event types are checked against ``EventsConfig.weights`` only when a config is given and its
  ``default_weight`` is None (otherwise any non-empty type is accepted).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from winnow.core.config import EventsConfig
from winnow.core.errors import DataError
from winnow.data.schema import (EVENT_COLUMNS, ITEM_COLUMNS, MAX_ID_LENGTH, REQUIRED_EVENT_COLUMNS,
                                USER_COLUMNS)

_Problems = list[tuple[int, DataError]]  # (row position, error)
# builds the error for (reason, row position, field, offending value)
_MakeError = Callable[[str, int, str | None, object], DataError]

DEFAULT_EVENT_TYPE = "interaction"
"""Type given to every event of a frame that has no ``event_type`` column (empty cells in a
present column are errors). ``defaults.toml`` weighs unknown types with ``default_weight``."""


_SMALL = 256  # below this many rows plain Python beats pandas' per-call overhead (API batches)


def _blank(x: Any) -> bool:
    return x is None or x is pd.NA or (isinstance(x, float) and x != x) or (isinstance(x, str) and not x.strip())


def _is_missing(s: pd.Series) -> np.ndarray:
    """True where a cell is null/NaN or an empty/blank string."""
    if len(s) <= _SMALL:
        return np.fromiter((_blank(x) for x in s.tolist()), dtype=bool, count=len(s))
    miss = s.isna().to_numpy().copy()
    if s.dtype == object or pd.api.types.is_string_dtype(s.dtype):
        blank = s.astype("string").str.strip().eq("")  # Arrow-backed: vectorised
        miss |= blank.fillna(False).to_numpy(dtype=bool)
    return miss


def _id_column(s: pd.Series, field: str, required: bool, problems: _Problems,
               mk: _MakeError, *, as_object: bool = False) -> pd.Series:
    """Ids as str (numbers stringified); records missing (if required) and over-long ids.
    Large columns stay in pandas' Arrow-backed string dtype unless ``as_object`` (then missing
    cells are None, as SQL parameters need)."""
    if len(s) <= _SMALL:
        vals = [None if _blank(x) else (x if isinstance(x, str) else str(x)) for x in s.tolist()]
        for r, v in enumerate(vals):
            if v is None and required:
                problems.append((r, mk("missing or empty id", r, field, None)))
            elif v is not None and len(v) > MAX_ID_LENGTH:
                problems.append((r, mk(f"id longer than {MAX_ID_LENGTH} characters", r, field, v[:40] + "...")))
        return pd.Series(vals, index=s.index, dtype=object)
    text = s.astype("string")
    miss = s.isna().to_numpy().copy()
    miss |= text.str.strip().eq("").fillna(False).to_numpy(dtype=bool)
    if required:
        for r in np.flatnonzero(miss).tolist():
            problems.append((int(r), mk("missing or empty id", r, field, None)))
    lengths = text.str.len().fillna(0).to_numpy(dtype=np.int64)
    for r in np.flatnonzero(lengths > MAX_ID_LENGTH).tolist():
        problems.append((int(r), mk(f"id longer than {MAX_ID_LENGTH} characters", r, field,
                                    str(text.iloc[r])[:40] + "...")))
    if not as_object:
        return text
    out = text.astype(object)
    if miss.any():
        out = out.where(~miss, None)
    return out


def to_unix_seconds(s: pd.Series, field: str, problems: _Problems, mk: _MakeError, *,
                    required: bool) -> pd.Series:
    """Integer unix seconds from ints, integral floats, numeric strings or ISO-8601 strings.

    Returns a nullable Int64 series; records unparseable, non-integral and (if required)
    missing values as problems.
    """
    miss = _is_missing(s)
    if pd.api.types.is_integer_dtype(s.dtype):
        return s.astype("Int64")
    num = pd.to_numeric(s.where(~miss), errors="coerce")
    bad_num = np.array(num.isna().to_numpy() & ~miss)
    if bad_num.any():  # not numbers: try ISO-8601 dates
        text = s[bad_num].astype(str)
        dt = pd.to_datetime(text, format="ISO8601", utc=True, errors="coerce")
        ok = dt.notna().to_numpy()
        secs = (dt[ok].astype("datetime64[ns, UTC]").astype("int64") // 10**9).astype("float64")
        num = num.astype("float64")
        num.loc[secs.index] = secs
        bad_num[np.flatnonzero(bad_num)[ok]] = False
    vals = np.array(num.to_numpy(dtype=np.float64, na_value=np.nan))
    nonint = ~np.isnan(vals) & (~np.isfinite(vals) | (np.floor(vals) != vals) | (np.abs(vals) > 2**62))
    for r in np.flatnonzero(bad_num | nonint).tolist():
        problems.append((int(r), mk("not integer unix seconds or an ISO-8601 date", r, field, s.iloc[r])))
    if required:
        for r in np.flatnonzero(miss).tolist():
            problems.append((int(r), mk("missing value", r, field, None)))
    vals[bad_num | nonint] = np.nan
    return pd.Series(vals, index=s.index).round().astype("Int64")


def _value_column(s: pd.Series, problems: _Problems, mk: _MakeError) -> np.ndarray:
    miss = _is_missing(s)
    num = np.array(pd.to_numeric(s.where(~miss), errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan))
    for r in np.flatnonzero(~miss & ~np.isfinite(num)).tolist():
        problems.append((int(r), mk("value must be a finite number or empty", r, "value", s.iloc[r])))
    num[miss] = np.nan
    return num


def _context_column(s: pd.Series, problems: _Problems, mk: _MakeError) -> pd.Series:
    if s.isna().all():
        return pd.Series([None] * len(s), index=s.index, dtype=object)
    def norm(pos: int, x: Any) -> str | None:
        if x is None or (isinstance(x, float) and np.isnan(x)):
            return None
        if isinstance(x, dict):
            return json.dumps(x, separators=(",", ":"), ensure_ascii=False)
        if isinstance(x, str):
            if not x.strip():
                return None
            try:
                parsed = json.loads(x)
            except json.JSONDecodeError:
                parsed = None
            if isinstance(parsed, dict):
                return x
        problems.append((pos, mk("context must be a JSON object", pos, "context", x)))
        return None

    return pd.Series([norm(i, x) for i, x in enumerate(s.tolist())], index=s.index, dtype=object)


def _check(events: pd.DataFrame, *, source: str, line_offset: int,
           events_config: EventsConfig | None,
           default_event_type: str = DEFAULT_EVENT_TYPE) -> tuple[pd.DataFrame, list[DataError]]:
    problems: _Problems = []

    def mk(reason: str, row: int, field: str | None, value: object) -> DataError:
        return DataError(reason, source=source, line=int(row) + line_offset, field=field, value=value)

    missing_cols = [c for c in REQUIRED_EVENT_COLUMNS if c not in events.columns]
    if missing_cols:
        return events, [DataError(f"missing required column(s) {missing_cols}; have {list(events.columns)}",
                                  source=source, field=missing_cols[0])]
    frame = events.reset_index(drop=True)
    n = len(frame)
    out = pd.DataFrame(index=frame.index)
    out["user_id"] = _id_column(frame["user_id"], "user_id", True, problems, mk)
    out["item_id"] = _id_column(frame["item_id"], "item_id", True, problems, mk)
    if "event_type" in frame.columns:
        out["event_type"] = _id_column(frame["event_type"], "event_type", True, problems, mk)
        if events_config is not None and events_config.default_weight is None:
            known = set(events_config.weights)
            unknown = ~out["event_type"].isin(known).to_numpy() & out["event_type"].notna().to_numpy()
            for r in np.flatnonzero(unknown).tolist():
                problems.append((int(r), mk(f"unknown event type (known: {sorted(known)})", r,
                                            "event_type", out["event_type"].iloc[r])))
    else:  # the whole column absent: every event gets the default type
        out["event_type"] = default_event_type
    out["value"] = _value_column(frame["value"], problems, mk) if "value" in frame.columns \
        else np.full(n, np.nan)
    out["timestamp"] = to_unix_seconds(frame["timestamp"], "timestamp", problems, mk, required=True)
    out["event_id"] = _id_column(frame["event_id"], "event_id", False, problems, mk, as_object=True) \
        if "event_id" in frame.columns else pd.Series([None] * n, dtype=object)
    out["context"] = _context_column(frame["context"], problems, mk) \
        if "context" in frame.columns else pd.Series([None] * n, dtype=object)
    problems.sort(key=lambda p: p[0])
    return out, [p[1] for p in problems]


def find_problems(events: pd.DataFrame, *, source: str = "events", line_offset: int = 0,
                  events_config: EventsConfig | None = None, limit: int | None = None,
                  default_event_type: str = DEFAULT_EVENT_TYPE) -> list[DataError]:
    """Every problem in an events frame, ordered by line (at most ``limit`` if given)."""
    _, problems = _check(events, source=source, line_offset=line_offset, events_config=events_config,
                         default_event_type=default_event_type)
    return problems if limit is None else problems[:limit]


def normalize_events(events: pd.DataFrame, *, source: str = "events", line_offset: int = 0,
                     events_config: EventsConfig | None = None,
                     default_event_type: str = DEFAULT_EVENT_TYPE) -> pd.DataFrame:
    """Validated copy with EVENT_COLUMNS in canonical dtypes; raises the first DataError."""
    out, problems = _check(events, source=source, line_offset=line_offset, events_config=events_config,
                           default_event_type=default_event_type)
    if problems:
        raise problems[0]
    out["timestamp"] = out["timestamp"].astype(np.int64)
    return out[list(EVENT_COLUMNS)]


def _raise_first(problems: _Problems) -> None:
    if problems:
        problems.sort(key=lambda p: p[0])
        raise problems[0][1]


def _split_list(x: Any) -> list[str]:
    if x is None or (isinstance(x, float) and np.isnan(x)):
        return []
    if isinstance(x, str):
        return [p.strip() for p in x.split("|") if p.strip()]
    return [str(p) for p in x]


def _flag(s: pd.Series, field: str, default: bool, problems: _Problems, mk: _MakeError) -> list[bool]:
    truthy = {"1", "true", "yes", "y", "t"}
    falsy = {"0", "false", "no", "n", "f"}
    out: list[bool] = []
    for pos, x in enumerate(s.tolist()):
        if x is None or (isinstance(x, float) and np.isnan(x)) or (isinstance(x, str) and not x.strip()):
            out.append(default)
        elif isinstance(x, (bool, np.bool_, int, np.integer)) and int(x) in (0, 1):
            out.append(bool(x))
        elif isinstance(x, str) and x.strip().lower() in truthy | falsy:
            out.append(x.strip().lower() in truthy)
        else:
            problems.append((pos, mk("expected a boolean (true/false/1/0)", pos, field, x)))
            out.append(default)
    return out


def _attributes(frame: pd.DataFrame, named: tuple[str, ...]) -> list[dict[str, Any]]:
    """Merge an optional ``attributes`` dict column with every column not in ``named``."""
    extra = [c for c in frame.columns if c not in named]
    base = frame["attributes"].tolist() if "attributes" in frame.columns else [None] * len(frame)
    records = frame[extra].to_dict("records") if extra else [{} for _ in range(len(frame))]
    out = []
    for b, rec in zip(base, records):
        attrs = dict(b) if isinstance(b, dict) else {}
        for k, v in rec.items():
            if v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NA:
                continue
            attrs[str(k)] = v.item() if isinstance(v, np.generic) else v
        out.append(attrs)
    return out


def normalize_items(items: pd.DataFrame, *, source: str = "items", line_offset: int = 0) -> pd.DataFrame:
    """Validated copy with ITEM_COLUMNS (categories list[str], attributes dict); raises the
    first DataError. Columns beyond ITEM_COLUMNS become attributes."""
    problems: _Problems = []

    def mk(reason: str, row: int, field: str | None, value: object) -> DataError:
        return DataError(reason, source=source, line=int(row) + line_offset, field=field, value=value)

    if "item_id" not in items.columns:
        raise DataError(f"missing required column 'item_id'; have {list(items.columns)}",
                        source=source, field="item_id")
    frame = items.reset_index(drop=True)
    n = len(frame)
    out = pd.DataFrame(index=frame.index)
    out["item_id"] = _id_column(frame["item_id"], "item_id", True, problems, mk)
    for col in ("title", "text", "creator"):
        out[col] = frame[col].astype(object).where(frame[col].notna(), "").map(str) \
            if col in frame.columns else [""] * n
    out["categories"] = [_split_list(x) for x in frame["categories"].tolist()] \
        if "categories" in frame.columns else [[] for _ in range(n)]
    out["created_at"] = to_unix_seconds(frame["created_at"], "created_at", problems, mk, required=False) \
        if "created_at" in frame.columns else pd.Series([pd.NA] * n, dtype="Int64")
    out["available"] = _flag(frame["available"], "available", True, problems, mk) \
        if "available" in frame.columns else [True] * n
    out["sponsored"] = _flag(frame["sponsored"], "sponsored", False, problems, mk) \
        if "sponsored" in frame.columns else [False] * n
    out["attributes"] = _attributes(frame, ITEM_COLUMNS)
    _raise_first(problems)
    return out[list(ITEM_COLUMNS)]


def normalize_users(users: pd.DataFrame, *, source: str = "users", line_offset: int = 0) -> pd.DataFrame:
    """Validated copy with USER_COLUMNS (interests list[str] from a list or |-separated text,
    attributes dict from every other column); raises the first DataError."""
    problems: _Problems = []

    def mk(reason: str, row: int, field: str | None, value: object) -> DataError:
        return DataError(reason, source=source, line=int(row) + line_offset, field=field, value=value)

    if "user_id" not in users.columns:
        raise DataError(f"missing required column 'user_id'; have {list(users.columns)}",
                        source=source, field="user_id")
    frame = users.reset_index(drop=True)
    n = len(frame)
    out = pd.DataFrame(index=frame.index)
    out["user_id"] = _id_column(frame["user_id"], "user_id", True, problems, mk)
    out["created_at"] = to_unix_seconds(frame["created_at"], "created_at", problems, mk, required=False) \
        if "created_at" in frame.columns else pd.Series([pd.NA] * n, dtype="Int64")
    out["attributes"] = _attributes(frame, USER_COLUMNS)
    out["interests"] = [_split_list(x) for x in frame["interests"].tolist()] \
        if "interests" in frame.columns else [[] for _ in range(n)]
    _raise_first(problems)
    return out[list(USER_COLUMNS)]
