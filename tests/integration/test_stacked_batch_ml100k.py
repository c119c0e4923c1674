"""Real data: `winnow batch-recommend --model stacked` writes the offline stacked ranker's top-k.

(The default batch-recommend runs the service's pipeline: tests/integration/test_served_batch_ml100k.py.)
On an ml-100k per-user random 75/25 split, the top-k the stacked path writes (the CSV of
``training.batch.batch_recommend``, also the ``--engine ray`` path) equals
``StackedRanker.recommend``'s top-k -- what bench/stacked_ranker.py measures -- for the same
data, config and users, item for item and score for score. ``[coldstart] items`` is off here: with it on, batch-recommend also inserts candidate
items without training events by their two-tower score (``ColdStartHook.insert_cold``), which
is the whole difference between the two paths' figures on ml-100k (bench/funnel_gap.py,
bench/results/funnel_gap_ml100k.json).
"""

from __future__ import annotations

import csv
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from winnow.core.config import load_config
from winnow.data.importers import movielens_100k
from winnow.data.training_data import dataset_from_frames
from winnow.evaluation.splits import stratified_split
from winnow.training.batch import batch_recommend
from winnow.training.stacked import StackedRanker

K = 10


@pytest.mark.realdata
@pytest.mark.slow
def test_stacked_batch_recommend_writes_the_stacked_rankers_top_k(ml100k: Path, tmp_path: Path) -> None:
    # a smaller stacked ranker than the shipped one (the claim is that the two paths agree, whatever
    # the config): one inner split, no EASE, fewer lists and trees
    cfg = load_config(tmp_path / "home", environ={}, overrides={
        "ranker": {"sources": ["als", "itemitem", "popularity"], "inner_folds": 1, "max_lists": 600,
                   "num_boost_round": 60},
        "coldstart": {"items": False}})
    imported = movielens_100k.load(ml100k)
    ds = dataset_from_frames(imported.events, imported.items, None, cfg.events, name="ml-100k")
    split = stratified_split(ds.interactions, 0.75, seed=0)
    train_ds = replace(ds, interactions=split.train)  # the whole catalog, training events only
    train = split.train.to_csr(binary=True)
    users = np.flatnonzero(np.diff(train.indptr) > 0)
    assert (np.bincount(split.train.item, minlength=ds.interactions.n_items) == 0).any()  # cold items exist

    funnel = StackedRanker(train_ds, cfg).fit(split.train)  # bench/stacked_ranker.py's path
    ref_items, ref_scores = funnel.recommend(users, K, exclude=train)
    assert (ref_items >= 0).all()

    out = tmp_path / "recs.csv"
    summary = batch_recommend(train_ds, cfg, k=K, out=out)  # batch-recommend's path
    assert summary.model == "stacked" and summary.cold_users == 0
    got_items = np.full((ds.interactions.n_users, K), -1, np.int64)
    got_scores = np.full((ds.interactions.n_users, K), np.nan)
    with open(out, newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            u, rank = ds.user_ids.get(row["user_id"]), int(row["rank"]) - 1
            got_items[u, rank] = ds.item_ids.get(row["item_id"])
            got_scores[u, rank] = float(row["score"])
    assert summary.rows == K * len(users)
    np.testing.assert_array_equal(got_items[users], ref_items)
    # the CSV writes scores with 6 significant digits
    np.testing.assert_allclose(got_scores[users], ref_scores, rtol=1e-5)
