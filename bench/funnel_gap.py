"""Why batch-recommend's stacked path trailed the stacked-ranker bench on ml-100k: the two diffed on one split.

Historical (stop 16): until stop 17 batch-recommend's default and bench/funnel.py both ran the
offline stacked ranker; both now run the service's pipeline (winnow.offline, one measurement).
This diagnosis now concerns `batch-recommend --model stacked` against bench/stacked_ranker.py.

    python bench/funnel_gap.py [--seeds 0] [--data-dir ../shared/data] --json bench/results/funnel_gap_ml100k.json

Both paths fit the same ``StackedRanker`` (training/stacked.py); batch-recommend wraps it in
``ColdStartHook`` (models/coldstart.py). For one per-user random 75/25 split, scored against
the same test part (external ids), this measures:

- ``bench``: bench/stacked_ranker.py's path (the library's ml-100k loader, ``StackedRanker.recommend``);
- ``csv_funnel``: the dataset batch-recommend builds from bench/batch_protocol.py's CSV files
  (events + items with title and categories only), ``StackedRanker.recommend`` alone;
- ``csv_batch``: the same funnel behind ``ColdStartHook``, as ``batch_recommend`` runs it
  (candidate items without training events are inserted by the two-tower's score);
and between csv_funnel and csv_batch: lists changed, cold items inserted (and how many of them
are test positives), warm items displaced (and how many of those were test positives).
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np

from winnow.core.config import load_config
from winnow.data.importers.generic import load as load_generic
from winnow.data.interactions import Dataset
from winnow.data.training_data import dataset_from_frames
from winnow.evaluation.datasets import load_named_dataset
from winnow.evaluation.runner import split_dataset
from winnow.metrics import evaluate_recs

from batch_protocol import write_split_csv  # bench/: the CSV files an outsider writes
from seeded import seeded_main
from winnow.models.coldstart import ColdStartHook
from winnow.training.stacked import StackedRankerRecommender


def csv_dataset(ds: Dataset, train, tmp: Path, home: Path) -> Dataset:
    """The Dataset `winnow batch-recommend` builds from bench/batch_protocol.py's CSV files."""
    write_split_csv(ds, train, tmp)
    imported = load_generic(events=tmp / "train.csv", items=tmp / "items.csv", users=None)
    cfg = load_config(home, environ={})
    return dataset_from_frames(imported.events, imported.items, None, cfg.events, name="csv")


def to_reference(src: Dataset, ref: Dataset, recs: np.ndarray) -> np.ndarray:
    """Item indices of ``src`` -> the same items' indices in ``ref`` (-1 kept)."""
    out = np.full(recs.shape, -1, np.int64)
    ok = recs >= 0
    out[ok] = ref.item_ids.encode(list(src.item_ids.decode(recs[ok])))
    return out


def run(data_dir: Path, seed: int, k: int) -> dict:
    home = Path(tempfile.mkdtemp(prefix="winnow-gap-"))
    cfg = load_config(home, environ={})  # batch-recommend's config: the shipped defaults
    ref = load_named_dataset("ml-100k", cfg, data_dir=data_dir)
    split = split_dataset(ref, "random", seed=seed, ratio=0.75)
    train_csr, test_csr = split.train.to_csr(binary=True), split.test.to_csr(binary=True)
    users = np.flatnonzero((np.diff(test_csr.indptr) > 0) & (np.diff(train_csr.indptr) > 0))
    scored = {}

    def ndcg(recs: np.ndarray, rows: np.ndarray) -> float:
        return float(evaluate_recs(recs, test_csr, k=k, users=rows)[f"ndcg@{k}"])

    t0 = time.perf_counter()
    bench = StackedRankerRecommender(ref, cfg).fit(split.train)
    r_bench, _ = bench.recommend(users, k, exclude=train_csr)
    scored["bench"] = ndcg(r_bench, users)
    with tempfile.TemporaryDirectory(prefix="winnow-gap-csv-") as tmp:
        ds = csv_dataset(ref, split.train, Path(tmp), home)
    c_users = ds.user_ids.encode(list(ref.user_ids.decode(users))).astype(np.int64)
    excl = ds.interactions.to_csr(binary=True)
    funnel = StackedRankerRecommender(ds, cfg).fit(ds.interactions)
    r_funnel, _ = funnel.recommend(c_users, k, exclude=excl)
    hook = ColdStartHook(ds, cfg, model=funnel, train=ds.interactions)
    r_batch, _ = hook.recommend(c_users, k, exclude=excl, candidates=None)
    a, b = to_reference(ds, ref, r_funnel), to_reference(ds, ref, r_batch)
    scored["csv_funnel"], scored["csv_batch"] = ndcg(a, users), ndcg(b, users)
    cold = np.bincount(split.train.item, minlength=ref.interactions.n_items) == 0
    inserted = [set(b[i][(b[i] >= 0) & cold[np.maximum(b[i], 0)]]) for i in range(len(users))]
    displaced = [set(a[i]) - set(b[i]) for i in range(len(users))]

    def positives(sets: list[set]) -> int:
        return int(sum(test_csr[users[i], sorted(s)].sum() for i, s in enumerate(sets) if s))

    return {"seed": seed, "users": len(users), f"ndcg@{k}": scored,
            "cold_items": int(cold.sum()), "test_pairs_on_cold_items": int(test_csr[:, np.flatnonzero(cold)].sum()),
            "chained_users": int((hook.n_events[c_users] < hook.chain_max).sum()),
            "lists_changed_by_hook": int((a != b).any(axis=1).sum()),
            "cold_inserted": sum(len(s) for s in inserted), "cold_inserted_positive": positives(inserted),
            "warm_displaced": sum(len(s) for s in displaced), "warm_displaced_positive": positives(displaced),
            "top_k_overlap_bench_vs_csv_funnel": float(np.mean(
                [len(set(r_bench[i]) & set(a[i])) / k for i in range(len(users))])),
            "seconds": time.perf_counter() - t0}


def _line(r: dict, k: int) -> str:
    return ("  ".join(f"{name} {v:.4f}" for name, v in r[f"ndcg@{k}"].items())
            + f"  | cold inserted {r['cold_inserted']} ({r['cold_inserted_positive']} positive), "
            f"warm displaced {r['warm_displaced']} ({r['warm_displaced_positive']} positive)")


def main(argv: list[str] | None = None) -> int:
    return seeded_main(__doc__, run, _line, argv)


if __name__ == "__main__":
    raise SystemExit(main())
