"""Tune ALS, BPR, EASE, item-item and sequence on ml-100k (validation only), then report them on test.

    python bench/tune.py [--data ../shared/data/ml-100k] [--models als,bpr,ease,itemitem]
                         [--json bench/results/tune_ml100k.json] [--write-tuned config/tuned]

Protocol: ml-100k ratings, every rating a positive interaction (weight 1); a per-user random
75/25 split (winnow.evaluation.splits.stratified_split, seed 0). Tuning sees only the 75% part:
winnow.training.tune carves a per-user 80/20 validation split out of it and maximises
NDCG@10 there. The chosen parameters are then refitted on the whole 75% and scored on the 25%
test part with training items excluded (NDCG/P/R/MAP@10, Microsoft Recommenders definitions,
see winnow.metrics). Popularity is reported as a floor. Single-threaded (2 shared
cores): implicit num_threads=1, BLAS 1 thread.

Writes config/tuned/<model>.json {dataset, protocol, grid, chosen, validation_metric, date} and
a JSON of every trial and test figure; prints a table. The [models.*] defaults in
src/winnow/defaults.toml are copied from the "chosen" records by hand.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import datetime as dt  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

from winnow.core.config import EventsConfig, ModelsConfig  # noqa: E402
from winnow.data.importers import movielens_100k  # noqa: E402
from winnow.data.interactions import Interactions  # noqa: E402
from winnow.data.training_data import dataset_from_frames  # noqa: E402
from winnow.evaluation.splits import stratified_split  # noqa: E402
from winnow.models.registry import model_class  # noqa: E402
from winnow.training.tune import evaluate_model, tune  # noqa: E402

REPO = Path(__file__).resolve().parents[1]

# Small grids (2 shared CPUs); pruned by what matters on a 1.7k-item catalog.
GRIDS: dict[str, dict[str, list[Any]]] = {
    # Grids were moved twice to bracket the optimum (each pass chose a grid edge): ALS first
    # factors 32-128 x reg 0.01-1 x alpha 1/10, then 16-64 x 0.1-10 x 1/4; BPR first lr
    # 0.01/0.05 x 100/300 epochs, then lr 0.005/0.01 x reg 0.01-0.1 x 50-200 epochs; item-item
    # first 20-200 neighbours x shrinkage 0-50, then 10-200 x 10-200. alpha < 1 is left out:
    # implicit reads confidences below 1 as negative feedback.
    "als": {"factors": [8, 16, 32], "regularization": [10.0, 30.0, 100.0],
            "alpha": [4.0, 10.0, 20.0], "bm25": [True, False]},
    "bpr": {"factors": [64, 128], "learning_rate": [0.0025, 0.005],
            "regularization": [0.01, 0.03], "iterations": [100, 200, 400]},
    "ease": {"l2": [100.0, 200.0, 500.0, 1000.0, 2000.0]},
    "itemitem": {"neighbours": [5, 10, 20], "shrinkage": [20.0, 50.0, 100.0]},
    "sequence": {"window": [10, 20, 40, 80], "decay": [0.9, 0.95, 1.0], "neighbours": [300, 1000],
                 "shrinkage": [10.0]},
}
# earlier passes, kept in the config/tuned records so the search is fully described
PREVIOUS_GRIDS: dict[str, list[dict[str, list[Any]]]] = {
    "als": [{"factors": [32, 64, 128], "regularization": [0.01, 0.1, 1.0], "alpha": [1.0, 10.0],
             "bm25": [True, False]},
            {"factors": [16, 32, 64], "regularization": [0.1, 1.0, 10.0], "alpha": [1.0, 4.0],
             "bm25": [True, False]}],
    "bpr": [{"factors": [32, 64, 128], "learning_rate": [0.01, 0.05],
             "regularization": [0.001, 0.01], "iterations": [100, 300]},
            {"factors": [64, 128], "learning_rate": [0.005, 0.01],
             "regularization": [0.01, 0.05, 0.1], "iterations": [50, 100, 200]}],
    "ease": [],
    "sequence": [{"window": [3, 5, 10, 20], "decay": [0.7, 1.0], "neighbours": [100, 300],
                  "shrinkage": [10.0, 50.0]}],
    "itemitem": [{"neighbours": [20, 50, 100, 200], "shrinkage": [0.0, 10.0, 50.0]},
                 {"neighbours": [10, 20, 50, 200], "shrinkage": [10.0, 50.0, 200.0]}],
}
# fixed, not tuned: one thread for reproducible, comparable runs on shared cores
FIXED: dict[str, dict[str, Any]] = {"als": {"num_threads": 1, "iterations": 15},
                                    "bpr": {"num_threads": 1}}
REPORT = ("ndcg@10", "precision@10", "recall@10", "map@10", "map_min@10", "coverage@10")


def load_ml100k(directory: Path) -> Interactions:
    imported = movielens_100k.load(directory)
    # every rating is a positive interaction of weight 1 (the MovieLens implicit protocol)
    events = EventsConfig(weights={"rating": 1.0}, value_transform={"rating": "none"})
    ds = dataset_from_frames(imported.events, imported.items, imported.users, events, "ml-100k")
    return ds.interactions


def config_keys(name: str) -> set[str]:
    return set(ModelsConfig.model_fields[name].annotation.model_fields)  # type: ignore[union-attr]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "ml-100k")
    ap.add_argument("--models", default="als,bpr,ease,itemitem")
    ap.add_argument("--json", type=Path, default=REPO / "bench" / "results" / "tune_ml100k.json")
    ap.add_argument("--write-tuned", default=str(REPO / "config" / "tuned"),
                    help="directory for config/tuned records; '' to skip")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    inter = load_ml100k(args.data)
    outer = stratified_split(inter, 0.75, seed=args.seed)
    protocol = (f"ml-100k, all ratings positive (weight 1); per-user random 75/25 split "
                f"(stratified_split, seed {args.seed}); tuned on a per-user 80/20 validation split "
                f"of the 75% train part only (validation_split, seed {args.seed}); NDCG@10 with "
                f"the fit part's items excluded")
    today = dt.datetime.now(dt.UTC).date().isoformat()
    results: dict[str, Any] = {"dataset": "ml-100k", "protocol": protocol,
                               "train_pairs": len(outer.train), "test_pairs": len(outer.test),
                               "models": {}}
    rows = []
    for name in [m for m in args.models.split(",") if m]:
        t0 = time.perf_counter()
        res = tune(name, outer.train, grid=GRIDS[name], k=10, seed=args.seed, metric="ndcg",
                   base_params=FIXED.get(name))
        tune_s = time.perf_counter() - t0
        model = model_class(name)(**res.best_params).fit(outer.train)
        test = evaluate_model(model, outer.train, outer.test, k=10)
        chosen = {key: v for key, v in res.best_params.items() if key in config_keys(name)}
        record = {"dataset": "ml-100k", "protocol": protocol, "grid": GRIDS[name],
                  "previous_grids": PREVIOUS_GRIDS.get(name, []),
                  "fixed": FIXED.get(name, {}), "chosen": chosen,
                  "validation_metric": {"name": "ndcg@10", "value": res.best_score},
                  "test_metrics": {key: test[key] for key in REPORT}, "date": today}
        if args.write_tuned:
            tuned_dir = Path(args.write_tuned)
            tuned_dir.mkdir(parents=True, exist_ok=True)
            (tuned_dir / f"{name}.json").write_text(json.dumps(record, indent=2) + "\n")
        results["models"][name] = {**record, "tune_seconds": tune_s,
                                   "trials": [t.__dict__ for t in res.trials]}
        rows.append((name, res.best_score, test, tune_s, chosen))
        print(f"tuned {name} in {tune_s:.0f}s: {chosen}", flush=True)

    pop = model_class("popularity")().fit(outer.train)
    rows.append(("popularity", float("nan"), evaluate_model(pop, outer.train, outer.test, k=10),
                 0.0, {}))
    results["models"]["popularity"] = {"test_metrics": {key: rows[-1][2][key] for key in REPORT}}
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2, default=str) + "\n")

    print(f"\nml-100k 75/25 test ({results['test_pairs']} pairs), training items excluded")
    print(f"{'model':<11} {'val ndcg':>8} " + " ".join(f"{c:>12}" for c in REPORT) + "  tune s")
    for name, val, test, tune_s, _ in rows:
        print(f"{name:<11} {val:8.4f} " + " ".join(f"{test[c]:12.4f}" for c in REPORT)
              + f"  {tune_s:6.0f}")


if __name__ == "__main__":
    main()
