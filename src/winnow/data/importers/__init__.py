"""Importers: read a data source into schema frames, validated with file/line positions.

Each importer module returns an ``Imported`` (events, items, users frames with the columns of
winnow.data.schema, already validated so a bad row raises DataError naming file, line and
reason). ``import_into(store, imported)`` writes all three in ONE transaction
(``Store.import_all``): a failing import writes nothing.

Modules: ``generic`` (CSV/Parquet, header-driven), ``movielens_small`` (ml-latest-small),
``movielens_100k`` (ml-100k), ``lastfm`` (hetrec2011-lastfm-2k).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from winnow.core.errors import DataError
from winnow.data.schema import EVENT_COLUMNS, ITEM_COLUMNS, USER_COLUMNS
from winnow.data.store import Store


@dataclass
class Imported:
    """Frames produced by an importer (validated, canonical dtypes)."""

    source: str
    events: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=list(EVENT_COLUMNS)))
    items: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=list(ITEM_COLUMNS)))
    users: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=list(USER_COLUMNS)))


def import_into(store: Store, imported: Imported) -> dict[str, int]:
    """Write an import atomically; returns {"items": n, "users": n, "events": n_new}."""
    return store.import_all(events=imported.events, items=imported.items, users=imported.users,
                            source=imported.source)


def require_file(path: Path) -> Path:
    """``path`` if it is a file, else DataError naming it."""
    if not path.is_file():
        raise DataError("file not found", source=str(path))
    return path


def read_table(path: Path, *, sep: str, names: list[str] | None = None,
               encoding: str = "utf-8") -> pd.DataFrame:
    """All cells as str (no NA guessing) from a delimited text file; a row with the wrong
    number of fields raises DataError with its 1-based line."""
    require_file(path)
    import csv
    rows: list[list[str]] = []
    header = names
    with open(path, encoding=encoding, newline="") as fh:
        reader = csv.reader(fh, delimiter=sep, quoting=csv.QUOTE_MINIMAL if sep == "," else csv.QUOTE_NONE)
        try:
            for row in reader:
                if header is None:
                    header = row
                    continue
                if not row:
                    continue
                if len(row) != len(header):
                    raise DataError(f"expected {len(header)} fields, found {len(row)}", source=str(path),
                                    line=reader.line_num, value=sep.join(row)[:80])
                rows.append(row)
        except UnicodeDecodeError as exc:
            raise DataError(f"not valid {encoding} text: {exc.reason}", source=str(path)) from None
        except csv.Error as exc:
            raise DataError(f"malformed row: {exc}", source=str(path), line=reader.line_num) from None
    return pd.DataFrame(rows, columns=header, dtype=object)
