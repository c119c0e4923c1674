"""`winnow train` with the MiniLM text encoder keeps item-text vectors in the home
(<home>/cache/text/minilm.npz): a retrain encodes only new or changed texts, gives the same
vectors as encoding them afresh, and the manifest says how many were encoded vs cached."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from serve_harness import trained_home
from winnow.bundle import active_version, bundles_dir
from winnow.core.config import load_config
from winnow.data.open_store import open_store
from winnow.models.content import MiniLMEncoder, item_texts
from winnow.training.job import train

TOML = """
[ranker]
enabled = false

[models.two_tower]
dim = 8
embedding = 8
hidden = 16
epochs = 2
patience = 2
batch_size = 256
user_buckets = 211
attr_buckets = 31
text_backend = "minilm"
refit = false

[[pipeline.sources]]
name = "popularity"
kind = "popularity"
quota = 50

[[pipeline.sources]]
name = "content"
kind = "content"
quota = 50
"""


def _bundle(home: Path) -> tuple[dict, np.ndarray]:
    d = bundles_dir(home) / active_version(home)
    with np.load(d / "models" / "two_tower" / "arrays.npz", allow_pickle=False) as z:
        text = z["text"]
    return json.loads((d / "manifest.json").read_text())["engine"]["two_tower"]["text"], text


def _retrain(home: Path) -> tuple[dict, np.ndarray]:
    cfg = load_config(home)
    store = open_store(cfg.store_url())
    try:
        train(cfg, store)
    finally:
        store.close()
    return _bundle(home)


def test_a_retrain_encodes_only_changed_texts_and_the_manifest_counts_them(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    cfg, world, _ = trained_home(home, TOML, n_users=80, n_items=120, n_events=2_000, seed=3)
    distinct = len({t for t in item_texts(world.items) if t})
    first, text1 = _bundle(home)
    assert (first["encoded"], first["cached"], first["distinct"]) == (distinct, 0, distinct)
    assert first["cache"] == str(home / "cache" / "text" / "minilm.npz")

    second, text2 = _retrain(home)
    assert (second["encoded"], second["cached"]) == (0, distinct)
    np.testing.assert_array_equal(text2, text1)

    store = open_store(cfg.store_url())
    try:
        items = store.read_items()
        row = items.index[items["item_id"] == world.items["item_id"].iloc[5]][0]
        changed = items.loc[[row]].assign(text="a brand new description of this thing")
        store.upsert_items(changed)
        items = store.read_items()
    finally:
        store.close()
    third, text3 = _retrain(home)
    assert (third["encoded"], third["cached"]) == (1, distinct - 1)
    i = int(np.flatnonzero(items["item_id"].to_numpy() == changed["item_id"].iloc[0])[0])
    fresh = MiniLMEncoder().encode([item_texts(items.iloc[[i]])[0]])[0]
    np.testing.assert_allclose(text3[i], fresh, atol=1e-6)
    others = np.arange(len(text3)) != i
    np.testing.assert_array_equal(text3[others], text1[others])
