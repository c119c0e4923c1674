"""The served funnel measured offline: NDCG of what `winnow serve` answers, on held-out splits.

    python bench/funnel.py --json bench/results/funnel_served_ml100k.json [--datasets ml-100k]
        [--seeds 0,1,2] [--data-dir ../shared/data] [--k 10] [--workers 1]

The README's funnel figure. Per dataset and split seed: the dataset's importer frames, the
protocol's split (ml-100k per-user random 75/25, ml-latest-small global temporal 80/20, Last.fm
per-user random 80/20; `winnow.evaluation.runner.split_dataset`), then
``winnow.offline.split_eval.served_split_lists``: the training part imported into a scratch
home, `winnow train` with the config (`WINNOW_HOME`'s winnow.toml if set, else the shipped
defaults), and every user with training and test events answered by the service's Pipeline in
batch mode (exploration off; training items excluded; as of 1 s after the last training
event) -- exactly what `winnow batch-recommend` writes for the same training part
(tests/integration/test_served_batch_ml100k.py checks it item for item). Scored with
winnow.metrics; JSON + a mean +- std table.

The offline stacked-ranker experiment (training.stacked, bulk-scored retrieval candidates
without the pipeline) is bench/stacked_ranker.py, a different figure.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from winnow.core.config import load_config  # noqa: E402
from winnow.data.training_data import dataset_from_frames  # noqa: E402
from winnow.evaluation.datasets import _DIRS, default_data_dir, read_directory  # noqa: E402
from winnow.evaluation.runner import split_dataset  # noqa: E402
from winnow.metrics import evaluate_recs  # noqa: E402
from winnow.offline.split_eval import served_split_lists  # noqa: E402

from protocols import PROTOCOLS, add_common, mean_std, planned_runs  # noqa: E402  (bench/)

METRICS = ("ndcg", "precision", "recall", "map")


def run_one(name: str, seed: int, k: int, data_dir: Path, workers: int) -> dict:
    """One dataset and split seed: the served funnel's metrics (see the module docstring)."""
    protocol, ratio = PROTOCOLS[name]
    cfg = load_config(Path(os.environ.get("WINNOW_HOME", "/nonexistent-winnow-home")))
    imported = read_directory(data_dir / _DIRS[name])
    ds = dataset_from_frames(imported.events, imported.items, imported.users, cfg.events, name=name)
    split = split_dataset(ds, protocol, seed=seed, ratio=ratio)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="winnow-funnel-") as home:
        lists = served_split_lists(imported, ds, split.train, split.test, cfg, Path(home), k=k, workers=workers)
        bundle = lists.served.info.version
    total_s = time.perf_counter() - t0
    m = evaluate_recs(lists.recs, split.test.to_csr(binary=True), k=k, users=lists.users,
                      train=split.train.to_csr(binary=True))
    return {"dataset": name, "protocol": protocol, "ratio": ratio, "seed": seed, "users": len(lists.users),
            "model": "served_pipeline", **m, "short_slates": int((lists.recs < 0).any(axis=1).sum()),
            "bundle": bundle, "fit_and_recommend_seconds": total_s, "workers": workers}


def summarise(runs: list[dict], k: int) -> list[dict]:
    out = []
    for name in dict.fromkeys(r["dataset"] for r in runs):
        rs = [r for r in runs if r["dataset"] == name]
        out.append({"dataset": name, "model": "served_pipeline", "seeds": [r["seed"] for r in rs],
                    **mean_std(rs, METRICS, k)})
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_common(ap, datasets="ml-100k")
    ap.add_argument("--workers", type=int, default=1, help="processes answering users (same lists)")
    args = ap.parse_args(argv)
    data_dir = args.data_dir or default_data_dir()
    runs: list[dict] = []
    for name, seed in planned_runs(ap, args):
        runs.append(run_one(name, seed, args.k, data_dir, args.workers))
        print(f"{name} seed {seed}: served funnel ndcg@{args.k} {runs[-1][f'ndcg@{args.k}']:.4f} "
              f"({runs[-1]['fit_and_recommend_seconds']:.0f} s)", file=sys.stderr, flush=True)
        args.json.parent.mkdir(parents=True, exist_ok=True)  # rewritten per seed: an interrupted run keeps it
        args.json.write_text(json.dumps({"k": args.k, "protocols": PROTOCOLS, "summary": summarise(runs, args.k),
                                         "runs": runs}, indent=2), encoding="utf-8")
    k = args.k
    for r in summarise(runs, k):
        cells = " ".join(f"{m}@{k} {r[f'{m}@{k}']:.4f} ±{r[f'{m}@{k}_std']:.4f}" for m in METRICS)
        print(f"{r['dataset']:16} served pipeline, seeds {r['seeds']}: {cells}")
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
