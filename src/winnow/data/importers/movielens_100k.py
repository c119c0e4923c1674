"""MovieLens ml-100k importer (u.data, u.item, u.genre, u.user; no header rows).

- events: u.data (tab-separated user, item, rating, unix seconds) -> event_type "rating",
  value = rating (1..5).
- items: u.item (latin-1, "|"-separated: id, title, release date, video release date, IMDb
  URL, 19 genre flags named by u.genre) -> title, categories = genres flagged 1, created_at =
  release date (dd-Mon-yyyy, UTC midnight; empty -> unknown), attributes {"imdb_url"} when set.
- users: u.user (id|age|gender|occupation|zip) -> attributes age (int), gender, occupation, zip.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from winnow.core.errors import DataError
from winnow.data.importers import Imported, read_table
from winnow.data.validate import normalize_events, normalize_items, normalize_users


def _genres(path: Path) -> list[str]:
    frame = read_table(path, sep="|", names=["name", "index"], encoding="latin-1")
    return [name for name, _ in sorted(zip(frame["name"], frame["index"].astype(int)), key=lambda p: p[1])]


def load(directory: str | Path) -> Imported:
    """Read ml-100k from its directory; DataError names file and line of a bad row."""
    d = Path(directory)
    data = read_table(d / "u.data", sep="\t", names=["user", "item", "rating", "ts"])
    events = normalize_events(pd.DataFrame({
        "user_id": data["user"], "item_id": data["item"], "event_type": "rating",
        "value": data["rating"], "timestamp": data["ts"]}), source=str(d / "u.data"), line_offset=1)

    genres = _genres(d / "u.genre")
    cols = ["item", "title", "release", "video", "url"] + genres
    raw = read_table(d / "u.item", sep="|", names=cols, encoding="latin-1")
    flags = raw[genres]
    bad = ~flags.isin(["0", "1"])
    if bad.to_numpy().any():
        row, col = next(zip(*bad.to_numpy().nonzero()))
        raise DataError("genre flag must be 0 or 1", source=str(d / "u.item"), line=int(row) + 1,
                        field=genres[col], value=flags.iat[row, col])
    release = pd.to_datetime(raw["release"].where(raw["release"] != ""), format="%d-%b-%Y", errors="coerce",
                             utc=True)
    bad_date = release.isna() & (raw["release"] != "")
    if bad_date.any():
        row = int(bad_date.to_numpy().nonzero()[0][0])
        raise DataError("release date must look like 01-Jan-1995", source=str(d / "u.item"), line=row + 1,
                        field="release date", value=raw["release"].iat[row])
    items = normalize_items(pd.DataFrame({
        "item_id": raw["item"], "title": raw["title"].str.strip(),
        "categories": [[g for g, f in zip(genres, r) if f == "1"] for r in flags.itertuples(index=False)],
        "created_at": [None if pd.isna(t) else int(t.timestamp()) for t in release],
        "attributes": [{"imdb_url": u} if u else {} for u in raw["url"]]}),
        source=str(d / "u.item"), line_offset=1)

    u = read_table(d / "u.user", sep="|", names=["user", "age", "gender", "occupation", "zip"])
    age = pd.to_numeric(u["age"], errors="coerce")
    if age.isna().any():
        row = int(age.isna().to_numpy().nonzero()[0][0])
        raise DataError("age must be an integer", source=str(d / "u.user"), line=row + 1, field="age",
                        value=u["age"].iat[row])
    users = normalize_users(pd.DataFrame({
        "user_id": u["user"], "age": age.astype(int), "gender": u["gender"],
        "occupation": u["occupation"], "zip": u["zip"]}), source=str(d / "u.user"), line_offset=1)
    return Imported(source=str(d), events=events, items=items, users=users)
