"""Importers (generic, MovieLens, Last.fm) and the training-data bridge."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from winnow.core.config import EventsConfig
from winnow.core.errors import DataError
from winnow.data.importers import generic, import_into, movielens_100k, movielens_small
from winnow.data.importers import lastfm as lastfm_importer
from winnow.data.sqlite_store import SQLiteStore
from winnow.data.training_data import dataset_from_frames, event_weights, load_dataset

CONFIG = EventsConfig(weights={"rating": 1.0, "play": 1.0, "view": 0.5, "purchase": 4.0, "skip": 0.0},
                      value_transform={"play": "log1p", "purchase": "linear"}, default_weight=1.0)


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# --- generic -------------------------------------------------------------------------------
def test_generic_csv_roundtrip(tmp_path: Path) -> None:
    ev = _write(tmp_path / "events.csv", "user_id,item_id,timestamp,value,event_id\n"
                "u1,a,10,,e1\nu2,b,2021-06-01T00:00:00Z,3.5,e2\n")
    items = _write(tmp_path / "items.csv", "item_id,title,categories,sponsored,color\n"
                   "a,Alpha,x|y,true,red\nb,Beta,,0,\nc,Gamma,z,,blue\n")
    users = _write(tmp_path / "users.csv", "user_id,age,interests\nu1,30,jazz|rock\n")
    imp = generic.load(events=ev, items=items, users=users)
    assert imp.events["event_type"].tolist() == ["interaction", "interaction"]
    assert imp.events["timestamp"].tolist() == [10, 1622505600]
    assert imp.items.set_index("item_id").loc["a", "attributes"] == {"color": "red"}
    assert imp.users.iloc[0]["interests"] == ["jazz", "rock"]
    store = SQLiteStore(tmp_path / "w.db")
    assert import_into(store, imp) == {"items": 3, "users": 1, "events": 2}
    assert store.get_item("a")["sponsored"] is True
    assert store.get_user("u1")["attributes"] == {"age": "30"}  # CSV cells stay text
    store.close()


def test_generic_parquet_events(tmp_path: Path) -> None:
    path = tmp_path / "ev.parquet"
    pd.DataFrame({"user_id": ["u"], "item_id": ["i"], "timestamp": [5], "event_type": ["view"]}).to_parquet(path)
    assert generic.load_events(path)["event_type"].tolist() == ["view"]


def test_bad_row_in_middle_fails_import_and_writes_nothing(tmp_path: Path) -> None:
    rows = [f"u{i},i{i},{1000 + i},view" for i in range(40)]
    rows[20] = "u20,i20,next tuesday,view"  # line 22 of the file (header = line 1)
    path = _write(tmp_path / "events.csv", "user_id,item_id,timestamp,event_type\n" + "\n".join(rows) + "\n")
    store = SQLiteStore(tmp_path / "w.db")
    store.append_events(pd.DataFrame({"user_id": ["x"], "item_id": ["y"], "timestamp": [1]}))
    before = store.counts()
    with pytest.raises(DataError) as err:
        import_into(store, generic.load(events=path))
    assert (err.value.source, err.value.line, err.value.field) == (str(path), 22, "timestamp")
    assert "next tuesday" in str(err.value)
    assert store.counts() == before
    store.close()


def test_wrong_field_count_and_missing_file(tmp_path: Path) -> None:
    path = _write(tmp_path / "e.csv", "user_id,item_id,timestamp\nu,i,1\nu,i\n")
    with pytest.raises(DataError) as err:
        generic.load_events(path)
    assert err.value.line == 3 and "expected 3 fields" in err.value.reason
    with pytest.raises(DataError, match="file not found"):
        generic.load_events(tmp_path / "nope.csv")


def test_ml100k_bad_rating_names_line(tmp_path: Path) -> None:
    (tmp_path / "u.genre").write_text("unknown|0\nAction|1\n\n", encoding="latin-1")
    (tmp_path / "u.item").write_text("1|Film (1995)|01-Jan-1995||http://x|0|1\n", encoding="latin-1")
    (tmp_path / "u.user").write_text("1|24|M|technician|85711\n", encoding="latin-1")
    (tmp_path / "u.data").write_text("1\t1\t3\t881250949\n1\t1\tfive\t881250950\n", encoding="utf-8")
    with pytest.raises(DataError) as err:
        movielens_100k.load(tmp_path)
    assert err.value.line == 2 and err.value.field == "value" and err.value.source.endswith("u.data")


# --- real data ---------------------------------------------------------------------------
@pytest.mark.realdata
def test_ml100k(ml100k: Path, tmp_path: Path) -> None:
    imp = movielens_100k.load(ml100k)
    assert len(imp.events) == 100_000 and len(imp.items) == 1682 and len(imp.users) == 943
    assert set(imp.events["value"].unique()) == {1.0, 2.0, 3.0, 4.0, 5.0}
    toy = imp.items.set_index("item_id").loc["1"]
    assert toy["title"] == "Toy Story (1995)" and toy["categories"] == ["Animation", "Children's", "Comedy"]
    assert toy["created_at"] == 788918400  # 01-Jan-1995
    assert imp.users.set_index("user_id").loc["1", "attributes"] == {
        "age": 24, "gender": "M", "occupation": "technician", "zip": "85711"}
    store = SQLiteStore(tmp_path / "w.db")
    import_into(store, imp)
    ds = load_dataset(store, CONFIG, name="ml-100k")
    assert (ds.interactions.n_users, ds.interactions.n_items, len(ds.interactions)) == (943, 1682, 100_000)
    assert ds.items.iloc[ds.item_ids.index("1")]["title"] == "Toy Story (1995)"
    store.close()


@pytest.mark.realdata
def test_ml_latest_small(ml_latest_small: Path) -> None:
    imp = movielens_small.load(ml_latest_small)
    assert len(imp.events) == 100_836 and len(imp.items) == 9742 and len(imp.users) == 610
    assert imp.events["value"].min() == 0.5 and (imp.events["event_type"] == "rating").all()
    jumanji = imp.items.set_index("item_id").loc["2"]
    assert jumanji["attributes"] == {"year": 1995} and "Robin Williams" in jumanji["text"]
    assert jumanji["categories"] == ["Adventure", "Children", "Fantasy"]


@pytest.mark.realdata
def test_lastfm(lastfm: Path) -> None:
    imp = lastfm_importer.load(lastfm, text_tags=10_000)  # every tag into text
    assert len(imp.events) == 92_834 and len(imp.items) == 17_632 and len(imp.users) == 1892
    assert (imp.events["event_type"] == "play").all() and imp.events["value"].max() == 352_698
    dated = imp.events["timestamp"] > 0
    assert 0 < dated.sum() < len(imp.events)  # pairs with a tag carry its date, others 0
    malice = imp.items.set_index("item_id").loc["1"]
    assert malice["title"] == "MALICE MIZER" and "j-rock" in malice["categories"]
    assert len(malice["categories"]) <= 10
    text = " ".join(imp.items["text"])
    assert "tropicália" in text or "español" in text or "fußball" in text  # latin-1 decoded


# --- training-data bridge ------------------------------------------------------------------
def test_event_weights_follow_config() -> None:
    types = ["view", "play", "purchase", "skip", "other"]
    codes = np.arange(5)
    w = event_weights(codes, np.array([9.0, np.e - 1, 3.0, 1.0, np.nan]), types, CONFIG)
    np.testing.assert_allclose(w, [0.5, 1.0, 12.0, 0.0, 1.0], rtol=1e-6)
    with pytest.raises(DataError, match="'play'"):
        event_weights(codes, np.ones(5), types, EventsConfig(weights={"view": 1.0}, default_weight=None))


def test_dataset_from_frames_indexes_catalog_items_without_events() -> None:
    events = pd.DataFrame({"user_id": ["u1", "u2", "u1"], "item_id": ["b", "z", "a"],
                           "event_type": ["view", "skip", "purchase"], "value": [np.nan, np.nan, 2.0],
                           "timestamp": [1, 2, 3]})
    items = pd.DataFrame({"item_id": ["a", "b", "c"], "title": ["A", "B", "C"]})
    ds = dataset_from_frames(events, items, None, CONFIG, "toy")
    assert ds.item_ids.ids == ["a", "b", "c", "z"] and ds.user_ids.ids == ["u1", "u2"]
    assert len(ds.interactions) == 2  # the skip (weight 0) is not positive signal
    csr = ds.interactions.to_csr()
    assert csr[0, ds.item_ids.index("a")] == pytest.approx(8.0) and csr[0, 1] == pytest.approx(0.5)
    assert ds.items["title"].tolist() == ["A", "B", "C", ""] and len(ds.users) == 2


def test_load_dataset_matches_dataset_from_frames(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    events = pd.DataFrame({"user_id": rng.integers(0, 30, 400).astype(str),
                           "item_id": rng.integers(0, 50, 400).astype(str),
                           "event_type": rng.choice(["view", "purchase", "play"], 400),
                           "value": rng.integers(1, 9, 400).astype(float), "timestamp": np.arange(400)})
    items = pd.DataFrame({"item_id": [str(i) for i in range(60)]})
    store = SQLiteStore(tmp_path / "w.db")
    store.import_all(events=events, items=items)
    a = load_dataset(store, CONFIG, name="s")
    b = dataset_from_frames(events, items, None, CONFIG, "f")
    assert a.interactions.n_items == b.interactions.n_items == 60
    ca, cb = a.interactions.to_csr(), b.interactions.to_csr()
    ua, ia = ca.nonzero()
    ext = {(a.user_ids.external(u), a.item_ids.external(i)): ca[u, i] for u, i in zip(ua, ia)}
    ub, ib = cb.nonzero()
    assert ext == pytest.approx({(b.user_ids.external(u), b.item_ids.external(i)): cb[u, i]
                                 for u, i in zip(ub, ib)})
    store.close()
