"""Last.fm hetrec2011-lastfm-2k importer (tab-separated .dat files with header rows).

- events: user_artists.dat (userID, artistID, weight) -> event_type "play", value = play count.
  The file has no time. timestamp = the first day (UTC midnight) on which that user tagged that
  artist in user_taggedartists.dat, else 0 ("time unknown": such events sort before every dated
  one, so a temporal split keeps them in training, never in a test window). A few tag years are
  implausible (as early as 1956, a known quirk of the data); they are kept as given.
- items: artists.dat (UTF-8) -> title = name, attributes {"url"}; categories = the artist's
  ``top_tags`` most-used tags (by number of tag assignments, ties by tag id) and text = up to
  ``text_tags`` tags joined with ", ". Tag names come from tags.dat, which is latin-1.
- users: every user id in user_artists.dat (the dataset has no profile data).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from winnow.core.errors import DataError
from winnow.data.importers import Imported, read_table
from winnow.data.validate import normalize_events, normalize_items, normalize_users


def _tag_days(tagged: pd.DataFrame, path: Path) -> pd.Series:
    """Unix seconds (UTC midnight) of each tag assignment; DataError on an impossible date."""
    parts = {k: pd.to_numeric(tagged[k], errors="coerce") for k in ("year", "month", "day")}
    dates = pd.to_datetime(pd.DataFrame(parts), errors="coerce", utc=True)
    bad = dates.isna().to_numpy()
    if bad.any():
        row = int(bad.nonzero()[0][0])
        raise DataError("day/month/year is not a valid date", source=str(path), line=row + 2, field="day",
                        value="/".join(tagged[k].iat[row] for k in ("day", "month", "year")))
    return (dates.astype("datetime64[ns, UTC]").astype("int64") // 10**9).astype(np.int64)


def load(directory: str | Path, *, top_tags: int = 10, text_tags: int = 30) -> Imported:
    """Read hetrec2011-lastfm-2k from its directory; DataError names file and line of a bad row."""
    d = Path(directory)
    plays = read_table(d / "user_artists.dat", sep="\t")
    tagged_path = d / "user_taggedartists.dat"
    tagged = read_table(tagged_path, sep="\t")
    tagged["ts"] = _tag_days(tagged, tagged_path).to_numpy()
    first = tagged.groupby(["userID", "artistID"], sort=False)["ts"].min()
    key = pd.MultiIndex.from_arrays([plays["userID"], plays["artistID"]])
    ts = first.reindex(key).fillna(0).astype(np.int64).to_numpy()
    events = normalize_events(pd.DataFrame({
        "user_id": plays["userID"], "item_id": plays["artistID"], "event_type": "play",
        "value": plays["weight"], "timestamp": ts}), source=str(d / "user_artists.dat"), line_offset=2)

    tag_names = read_table(d / "tags.dat", sep="\t", encoding="latin-1")
    names = dict(zip(tag_names["tagID"], tag_names["tagValue"].str.strip()))
    counts = tagged.groupby(["artistID", "tagID"], sort=False).size().rename("n").reset_index()
    counts["tag_num"] = pd.to_numeric(counts["tagID"], errors="coerce")
    counts = counts.sort_values(["artistID", "n", "tag_num"], ascending=[True, False, True])
    ranked: dict[str, list[str]] = {}
    for artist, group in counts.groupby("artistID", sort=False)["tagID"]:
        ranked[str(artist)] = [names[t] for t in group.head(text_tags) if t in names and names[t]]

    artists = read_table(d / "artists.dat", sep="\t")
    items = normalize_items(pd.DataFrame({
        "item_id": artists["id"], "title": artists["name"].str.strip(),
        "categories": [ranked.get(a, [])[:top_tags] for a in artists["id"]],
        "text": [", ".join(ranked.get(a, [])) for a in artists["id"]],
        "attributes": [{"url": u} if u else {} for u in artists["url"]]}),
        source=str(d / "artists.dat"), line_offset=2)
    users = normalize_users(pd.DataFrame({"user_id": pd.unique(events["user_id"])}),
                            source=str(d / "user_artists.dat"))
    return Imported(source=str(d), events=events, items=items, users=users)
