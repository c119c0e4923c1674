"""MovieLens ml-latest-small importer (ratings.csv, movies.csv, tags.csv; UTF-8, header rows).

- events: ratings.csv -> event_type "rating", value = rating (0.5..5), timestamp = unix seconds.
- items: movies.csv -> title as given, categories = genres split on "|" ("(no genres listed)"
  -> none), attributes {"year": int} parsed from a trailing "(YYYY)" in the title (absent when
  the title has none); text = the movie's distinct tags from tags.csv joined with ", ".
- users: every user id seen in ratings.csv (no profile data in this dataset).
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from winnow.data.importers import Imported, read_table
from winnow.data.validate import normalize_events, normalize_items, normalize_users

_YEAR = re.compile(r"\((\d{4})\)\s*$")


def load(directory: str | Path) -> Imported:
    """Read ml-latest-small from its directory; DataError names file and line of a bad row."""
    d = Path(directory)
    ratings = read_table(d / "ratings.csv", sep=",")
    events = normalize_events(pd.DataFrame({
        "user_id": ratings["userId"], "item_id": ratings["movieId"], "event_type": "rating",
        "value": ratings["rating"], "timestamp": ratings["timestamp"]}),
        source=str(d / "ratings.csv"), line_offset=2)

    movies = read_table(d / "movies.csv", sep=",")
    tags_path = d / "tags.csv"
    text: dict[str, str] = {}
    if tags_path.exists():
        tags = read_table(tags_path, sep=",")
        for movie, group in tags.groupby("movieId", sort=False)["tag"]:
            text[str(movie)] = ", ".join(dict.fromkeys(t.strip() for t in group if t.strip()))
    years = [(_YEAR.search(t) or None) for t in movies["title"]]
    items = normalize_items(pd.DataFrame({
        "item_id": movies["movieId"], "title": movies["title"].str.strip(),
        "categories": [g if g != "(no genres listed)" else "" for g in movies["genres"]],
        "text": [text.get(m, "") for m in movies["movieId"]],
        "attributes": [{"year": int(m.group(1))} if m else {} for m in years]}),
        source=str(d / "movies.csv"), line_offset=2)

    users = normalize_users(pd.DataFrame({"user_id": pd.unique(events["user_id"])}),
                            source=str(d / "ratings.csv"))
    return Imported(source=str(d), events=events, items=items, users=users)
