"""Catalog.extend (many new items, each array grown once) equals upserting them one by one, and
a serving start overlays the store's catalog on a bundle's: flags of known items, new items."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from winnow.core.ids import IdMap
from winnow.data.sqlite_store import SQLiteStore
from winnow.pipeline.types import NO_CATEGORY, Catalog
from winnow.serving.runtime import _overlay_store_catalog


def _catalog() -> Catalog:
    ids = IdMap("item", ["a", "b", "c"])
    return Catalog(ids, category=np.array([0, 1, NO_CATEGORY], np.int32), category_names=["x", "y"],
                   available=np.ones(3, bool), sponsored=np.zeros(3, bool),
                   created_at=np.array([10, 20, -1], np.int64), popularity=np.array([3, 2, 1], np.float32),
                   trending=np.array([1, 1, 1], np.float32))


def _arrays(c: Catalog) -> dict[str, object]:
    return {"ids": list(c.item_ids.decode(np.arange(len(c)))), "category": c.category.tolist(),
            "names": list(c.category_names), "available": c.available.tolist(), "sponsored": c.sponsored.tolist(),
            "created_at": c.created_at.tolist(), "popularity": c.popularity.tolist(), "trending": c.trending.tolist()}


def test_extend_equals_upserting_one_by_one() -> None:
    new = [("d", ["z", "x"], True, False, 5), ("e", [], False, True, -1), ("f", ["y"], True, True, 7)]
    one, many = _catalog(), _catalog()
    for iid, cats, av, sp, cr in new:
        one.upsert(iid, categories=cats, available=av, sponsored=sp, created_at=None if cr < 0 else cr)
    before = many.changes
    many.extend([n[0] for n in new], categories=[n[1] for n in new], available=np.array([n[2] for n in new]),
                sponsored=np.array([n[3] for n in new]), created_at=np.array([n[4] for n in new]))
    assert _arrays(many) == _arrays(one)
    assert many.changes > before


def test_extend_rejects_known_or_repeated_ids_and_adds_nothing() -> None:
    c = _catalog()
    for ids in (["d", "a"], ["d", "d"]):
        with pytest.raises(ValueError, match="already in the catalog or given twice"):
            c.extend(ids, categories=[[], []], available=np.ones(2, bool), sponsored=np.zeros(2, bool),
                     created_at=np.full(2, -1))
    with pytest.raises(ValueError, match="categories has 1 rows for 2"):
        c.extend(["d", "e"], categories=[[]], available=np.ones(2, bool), sponsored=np.zeros(2, bool),
                 created_at=np.full(2, -1))
    assert _arrays(c) == _arrays(_catalog())


def test_overlay_applies_store_flags_and_adds_the_items_the_bundle_lacks(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "winnow.db")
    try:
        store.upsert_items(pd.DataFrame({"item_id": ["a", "b", "n1", "c", "n2"],
                                         "categories": ["x", "y", "y|x", "", "w"],
                                         "created_at": [10, 20, 30, None, None],
                                         "sponsored": [False, True, True, False, False]}))
        store.patch_item("a", available=False)
        c = _catalog()
        _overlay_store_catalog(c, store)
    finally:
        store.close()
    got = _arrays(c)
    assert got["ids"] == ["a", "b", "c", "n1", "n2"]
    assert got["available"] == [False, True, True, True, True]
    assert got["sponsored"] == [False, True, False, True, False]
    assert got["created_at"] == [10, 20, -1, 30, -1]
    assert [c.category_names[k] if k != NO_CATEGORY else None for k in got["category"]] == ["x", "y", None, "y", "w"]
    assert got["popularity"][3:] == [0.0, 0.0]
