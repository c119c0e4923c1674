"""Hold `winnow batch-recommend` against an external protocol, exactly as an outsider would.

Writes a per-user random split of ml-100k (default 75/25) to plain CSV files, runs the CLI
(`winnow batch-recommend --train train.csv --items items.csv --k 10 --out recs.csv`) in a
subprocess, reads recs.csv back and scores it against test.csv with winnow's metrics.

    python bench/batch_protocol.py [--data-dir ../shared/data] [--seeds 0,1,2] [--model M] --json FILE
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from winnow.core.config import load_config
from winnow.core.ids import IdMap
from winnow.evaluation.datasets import default_data_dir
from winnow.metrics import evaluate_recs
from winnow.evaluation.splits import stratified_split
from winnow.data.importers.movielens_100k import load
from winnow.data.training_data import dataset_from_frames


def write_split_csv(ds, train, d: Path) -> None:
    """What an outsider hands batch-recommend: ``d/train.csv`` (the training events as
    user_id,item_id,timestamp,event_type,value) and ``d/items.csv`` (item_id,title,categories)."""
    pd.DataFrame({"user_id": ds.user_ids.decode(train.user), "item_id": ds.item_ids.decode(train.item),
                  "timestamp": train.timestamp, "event_type": "rating", "value": 1.0}
                 ).to_csv(d / "train.csv", index=False)
    items = ds.items[["item_id", "title"]].copy()
    items["categories"] = ["|".join(c) for c in ds.items["categories"]]
    items.to_csv(d / "items.csv", index=False)


def run(data_dir: Path, seed: int, ratio: float, k: int, model: str | None) -> dict[str, float]:
    imported = load(data_dir / "ml-100k")
    cfg = load_config(tempfile.mkdtemp(prefix="winnow-bp-"), environ={})
    ds = dataset_from_frames(imported.events, imported.items, imported.users, cfg.events, name="ml-100k")
    split = stratified_split(ds.interactions, ratio, seed=seed)
    with tempfile.TemporaryDirectory(prefix="winnow-batch-") as tmp:
        d = Path(tmp)
        write_split_csv(ds, split.train, d)
        cmd = [sys.executable, "-m", "winnow", "--home", str(d / "home"), "batch-recommend",
               "--train", str(d / "train.csv"), "--items", str(d / "items.csv"), "--k", str(k),
               "--out", str(d / "recs.csv")] + (["--model", model] if model else [])
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True)
        seconds = time.perf_counter() - t0
        recs = pd.read_csv(d / "recs.csv", dtype={"user_id": str, "item_id": str})
    users = IdMap("user", sorted(set(recs["user_id"])))
    rows = users.encode(recs["user_id"].tolist())
    cols = recs["rank"].to_numpy() - 1
    out = np.full((len(users), k), -1, np.int64)
    out[rows, cols] = ds.item_ids.encode(recs["item_id"].tolist())
    # the test set, re-indexed by the users present in the output
    test = split.test
    user_idx = ds.user_ids.encode(users.ids)
    rel = sp.csr_matrix((np.ones(len(test)), (test.user, test.item)), shape=(ds.interactions.n_users, ds.interactions.n_items))
    metrics = evaluate_recs(out, rel, k=k, users=user_idx)
    return {**metrics, "seconds": seconds}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", type=Path, default=None)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--ratio", type=float, default=0.75)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--model", default=None, help="override the configured model (e.g. ease, als)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    data_dir = args.data_dir or default_data_dir()
    runs = []
    for s in args.seeds.split(","):
        runs.append({"seed": int(s), **run(data_dir, int(s), args.ratio, args.k, args.model)})
        print(f"seed {s}: " + " ".join(f"{key} {v:.4f}" for key, v in runs[-1].items() if key != "seed"),
              file=sys.stderr, flush=True)
    keys = [f"ndcg@{args.k}", f"precision@{args.k}", f"recall@{args.k}", f"map@{args.k}"]
    summary = {key: {"mean": float(np.mean([r[key] for r in runs])),
                     "std": float(np.std([r[key] for r in runs], ddof=1)) if len(runs) > 1 else 0.0}
               for key in keys + ["seconds"]}
    print(f"batch-recommend on ml-100k, per-user random {args.ratio:.0%} split, model={args.model or 'configured'}")
    print(f"{'metric':<14}{'mean':>10}{'std':>10}")
    for key, v in summary.items():
        print(f"{key:<14}{v['mean']:>10.4f}{v['std']:>10.4f}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"protocol": f"ml-100k stratified {args.ratio}", "model": args.model,
                                         "k": args.k, "summary": summary, "runs": runs}, indent=2))


if __name__ == "__main__":
    main()
