"""Generic header-driven CSV / Parquet importer.

- events file: columns ``user_id, item_id, timestamp`` and optionally ``event_type``, ``value``,
  ``event_id``, ``context`` (JSON object text). Without an ``event_type`` column every event
  gets ``default_event_type`` ("interaction", weighted by ``[events] default_weight``).
  ``timestamp``: integer unix seconds or ISO-8601 text.
- items file: ``item_id`` plus any of ``title, text, categories`` (|-separated) ``, creator,
  created_at, available, sponsored``; every other column becomes an attribute.
- users file: ``user_id`` plus any columns (attributes); ``interests`` is |-separated.
The format follows the suffix: ``.parquet`` / ``.pq`` are Parquet, anything else CSV (``,``;
``.tsv`` uses tabs). Line numbers in errors: CSV header = line 1, first data row = line 2;
Parquet rows are reported as line = row index + 2 as well, for one convention.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from winnow.core.errors import DataError
from winnow.data.importers import Imported, read_table, require_file
from winnow.data.validate import DEFAULT_EVENT_TYPE, normalize_events, normalize_items, normalize_users


def read_any(path: str | Path) -> pd.DataFrame:
    """A CSV/TSV (all cells str, empty cells None) or Parquet file as a DataFrame."""
    p = require_file(Path(path))
    if p.suffix.lower() in (".parquet", ".pq"):
        try:
            return pd.read_parquet(p)
        except Exception as exc:  # pyarrow raises several types for a broken file
            raise DataError(f"cannot read Parquet: {exc}", source=str(p)) from None
    frame = read_table(p, sep="\t" if p.suffix.lower() == ".tsv" else ",")
    return frame.where(frame != "", None)


def load_events(path: str | Path, *, default_event_type: str = DEFAULT_EVENT_TYPE) -> pd.DataFrame:
    """Validated events frame (EVENT_COLUMNS) from a file; DataError names file, line, field."""
    frame = read_any(path)
    return normalize_events(frame, source=str(path), line_offset=2, default_event_type=default_event_type)


def load_items(path: str | Path) -> pd.DataFrame:
    """Validated items frame (ITEM_COLUMNS) from a file."""
    return normalize_items(read_any(path), source=str(path), line_offset=2)


def load_users(path: str | Path) -> pd.DataFrame:
    """Validated users frame (USER_COLUMNS) from a file."""
    return normalize_users(read_any(path), source=str(path), line_offset=2)


def load(*, events: str | Path | None = None, items: str | Path | None = None,
         users: str | Path | None = None, default_event_type: str = DEFAULT_EVENT_TYPE) -> Imported:
    """Read whichever of the three files are given; at least one is required."""
    if events is None and items is None and users is None:
        raise DataError("nothing to import: give an events, items or users file", source="generic")
    out = Imported(source=str(events or items or users))
    if events is not None:
        out.events = load_events(events, default_event_type=default_event_type)
    if items is not None:
        out.items = load_items(items)
    if users is not None:
        out.users = load_users(users)
    return out
