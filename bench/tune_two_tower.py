"""Tune the two-tower model on validation data only, then report test next to ALS and EASE.

    .venv/bin/python bench/tune_two_tower.py --dataset ml-100k [--trials '{"dim": 64}' ...]
        [--test] [--seeds 0] [--write-tuned config/tuned]

Protocols (as README / bench/coldstart.py compare): ml-100k per-user random 75/25, ml-latest-small
global temporal 80%, Last.fm per-user random 80/20; outer split seed 0 (``--outer-seed`` for a
second validation carve, ``--seeds`` for test).
Validation: carved from the outer train part only (winnow.evaluation.splits.validation_split with
the outer split's method: per-user random 80/20, or the temporal 80% quantile of the train part).
Each trial = config overrides on top of [models.two_tower]; the best by validation NDCG@10 is
(with --test) refitted on the whole train part and scored on test, with ALS and EASE fitted on
the same split. --write-tuned writes config/tuned/two_tower_<dataset>.json.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import datetime as dt  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from winnow.core.config import load_config  # noqa: E402
from winnow.evaluation.datasets import load_named_dataset  # noqa: E402
from winnow.metrics import evaluate_recs  # noqa: E402
from winnow.evaluation.runner import evaluate_split, split_dataset  # noqa: E402
from winnow.evaluation.splits import validation_split  # noqa: E402
from winnow.models.two_tower import TwoTowerRecommender  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
PROTOCOLS = {"ml-100k": ("random", 0.75), "ml-latest-small": ("temporal", None), "lastfm": ("random", 0.8)}
METRICS = ("ndcg@10", "precision@10", "recall@10", "map@10", "coverage@10")


def tuned_params(dataset: str, directory: Path = REPO / "config" / "tuned") -> dict[str, Any]:
    """The "chosen" overrides of config/tuned/two_tower_<dataset>.json ({} when absent), with
    ``max_train_events = 0``: they were tuned on whole streams (up to 200 epochs x ~90k events on
    ml-100k, above the default budget), and train as tuned."""
    path = directory / f"two_tower_{dataset}.json"
    chosen = json.loads(path.read_text(encoding="utf-8"))["chosen"] if path.exists() else {}
    return {"max_train_events": 0, **chosen} if chosen else {}


def fit_score(cfg, ds, split, params: dict[str, Any]) -> tuple[dict[str, float], float, TwoTowerRecommender]:
    """Fit the two-tower (with side info) on split.train; metrics@10 on split.test, fit seconds."""
    model = TwoTowerRecommender.from_config(cfg.models.two_tower.model_copy(update=params))
    model.with_side_info(ds.items, ds.users)
    t0, c0 = time.perf_counter(), time.process_time()
    model.fit(split.train)
    fit_s = time.perf_counter() - t0
    print(f"  fit {fit_s:.1f} s wall, {time.process_time() - c0:.1f} s CPU", flush=True)
    trc, tec = split.train.to_csr(), split.test.to_csr(binary=True)
    users = np.flatnonzero((np.diff(tec.indptr) > 0) & (np.diff(trc.indptr) > 0))
    recs, _ = model.recommend(users, 10, exclude=trc)
    m = evaluate_recs(recs, tec, k=10, train=trc, users=users)
    return {k: round(float(m[k]), 4) for k in METRICS}, fit_s, model


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="ml-100k", choices=sorted(PROTOCOLS))
    ap.add_argument("--base", default="{}", help="JSON overrides shared by every trial")
    ap.add_argument("--trials", nargs="*", default=["{}"], help="JSON overrides, one trial each")
    ap.add_argument("--tuned", action="store_true", help="start from config/tuned/two_tower_<dataset>.json")
    ap.add_argument("--baselines", default="", help="comma list, e.g. als,ease: also on validation")
    ap.add_argument("--test", action="store_true", help="refit the best trial on train, score test")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--outer-seed", type=int, default=0,
                    help="outer split seed whose train part the validation carve comes from (a second carve: 1)")
    ap.add_argument("--test-baselines", default="als,ease", help="models fitted next to the two-tower on test")
    ap.add_argument("--skip-validation", action="store_true", help="with --test: score --base on test only")
    ap.add_argument("--write-tuned", type=Path, default=None)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    cfg = load_config(home=Path("/tmp/winnow-bench-home"))
    ds = load_named_dataset(args.dataset, cfg)
    protocol, ratio = PROTOCOLS[args.dataset]
    base = {**(tuned_params(args.dataset) if args.tuned else {}), **json.loads(args.base)}
    outer = split_dataset(ds, protocol, seed=args.outer_seed, ratio=ratio)
    val = validation_split(outer.train, outer) if protocol == "temporal" else \
        validation_split(outer.train, "stratified", ratio=0.8, seed=0)
    result: dict[str, Any] = {"dataset": args.dataset, "protocol": f"{protocol} {ratio or 0.8}", "base": base,
                              "outer_seed": args.outer_seed, "trials": []}
    if args.baselines:
        for row in evaluate_split(val, args.baselines.split(","), cfg, k=10):
            print(f"validation {row['model']:10s} ndcg@10 {row['ndcg@10']:.4f}", flush=True)
            result[f"validation_{row['model']}"] = round(float(row["ndcg@10"]), 4)
    best = (float("nan"), base) if args.skip_validation else None
    for trial in [] if args.skip_validation else args.trials:
        params = {**base, **json.loads(trial)}
        m, fit_s, model = fit_score(cfg, ds, val, params)
        hist = model.history_
        inner = max(hist.get("validation_ndcg") or [float("nan")])
        print(f"val ndcg {m['ndcg@10']:.4f} fit {fit_s:6.1f}s best_epoch {hist.get('best_epoch')} "
              f"inner {inner:.4f} {trial}", flush=True)
        result["trials"].append({"params": json.loads(trial), "validation": m, "fit_seconds": round(fit_s, 1),
                                 "best_epoch": hist.get("best_epoch"), "inner_validation": round(inner, 4)})
        if best is None or m["ndcg@10"] > best[0]:
            best = (m["ndcg@10"], params)
    assert best is not None
    result["chosen"], result["validation_ndcg@10"] = best[1], best[0]
    if args.test:
        baselines = [m for m in args.test_baselines.split(",") if m]
        rows: dict[str, list[dict[str, float]]] = {"two_tower": [], **{m: [] for m in baselines}}
        for seed in args.seeds:
            split = split_dataset(ds, protocol, seed=seed, ratio=ratio)
            m, fit_s, _ = fit_score(cfg, ds, split, best[1])
            rows["two_tower"].append({**m, "fit_seconds": round(fit_s, 1)})
            for row in evaluate_split(split, baselines, cfg, k=10):
                rows[row["model"]].append({k: round(float(row[k]), 4) for k in METRICS})
        result["test"] = {name: {k: round(float(np.mean([r[k] for r in runs])), 4) for k in runs[0]}
                          for name, runs in rows.items()}
        result["test_seeds"] = args.seeds
        print(f"\ntest, {args.dataset}, seeds {args.seeds} (means)\n{'model':12s}" + "".join(f"{k:>14s}" for k in METRICS))
        for name, r in result["test"].items():
            print(f"{name:12s}" + "".join(f"{r[k]:>14.4f}" for k in METRICS))
    result["date"] = dt.date.today().isoformat()
    if args.write_tuned:
        args.write_tuned.mkdir(parents=True, exist_ok=True)
        (args.write_tuned / f"two_tower_{args.dataset}.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
