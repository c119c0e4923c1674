"""LightGBM lambdarank training time by thread count and OpenMP wait policy, side by side.

Why ``[ranker] threads = 1`` is the default (defaults.toml): a seeded synthetic lambdarank set
shaped like the 100k-item training job's (lists x candidates x features), trained for a fixed
number of rounds with 1 thread and with every core, under OpenMP's default (spinning) wait
policy and the passive one -- each configuration in its own process (the policy is read when
the OpenMP runtime loads), alternating, so all see the machine's load. Prints a table and writes
JSON (with the load average of every run). An earlier run of the same set on a near-idle
machine (load 1.6): 1 thread 32.0 s, 2 threads 16.6 s. bench/results/ranker_threads.json, with
other processes holding a core (load 2-5): 2 threads slower than 1 under either policy.

    python bench/ranker_threads.py --json bench/results/ranker_threads.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import lightgbm as lgb
import numpy as np


def one(args: argparse.Namespace, threads: int) -> float:
    """Seconds to train ``args.rounds`` rounds with ``threads`` threads (this process)."""
    rng = np.random.default_rng(0)
    n = args.lists * args.per_list
    x = rng.normal(size=(n, args.features)).astype(np.float32)
    y = (rng.random(n) < 0.01 + 0.05 * (x[:, 0] > 1)).astype(np.float32)
    group = np.full(args.lists, args.per_list)
    params = {"objective": "lambdarank", "num_leaves": 7, "learning_rate": 0.05,
              "verbosity": -1, "num_threads": threads, "deterministic": True, "seed": 0}
    ds = lgb.Dataset(x, y, group=group, params={"verbosity": -1, "num_threads": threads})
    t0 = time.perf_counter()
    lgb.train(params, ds, num_boost_round=args.rounds)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lists", type=int, default=7500)
    ap.add_argument("--per-list", type=int, default=430)
    ap.add_argument("--features", type=int, default=60)
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)  # child: train with this many threads
    ap.add_argument("--json")
    args = ap.parse_args()
    if args.one is not None:
        print(one(args, args.one))
        return
    cores = os.cpu_count() or 1
    configs = [(t, p) for p in ("ACTIVE", "PASSIVE") for t in (1, cores)]
    runs = []
    for rep in range(args.repeats):
        for threads, policy in configs:
            env = {**os.environ, "OMP_WAIT_POLICY": policy}
            cmd = [sys.executable, __file__, "--one", str(threads), "--lists", str(args.lists),
                   "--per-list", str(args.per_list), "--features", str(args.features),
                   "--rounds", str(args.rounds)]
            secs = float(subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout)
            runs.append({"repeat": rep, "threads": threads, "omp_wait_policy": policy,
                         "seconds": round(secs, 2), "load_average": os.getloadavg()})
            print(f"repeat {rep}  threads {threads}  {policy:7s}: {secs:7.2f} s  load {os.getloadavg()[0]:.2f}",
                  flush=True)
    summary = {f"{t} threads, {p}": float(np.median([r["seconds"] for r in runs
                                                     if r["threads"] == t and r["omp_wait_policy"] == p]))
               for t, p in configs}
    out = {"machine": {"cpus": cores, "python": platform.python_version(), "lightgbm": lgb.__version__},
           "rows": args.lists * args.per_list, "features": args.features, "lists": args.lists,
           "rounds": args.rounds, "runs": runs, "median_seconds": summary}
    print("\n| configuration | median s |\n|---|---|\n" + "\n".join(f"| {k} | {v:.1f} |" for k, v in summary.items()))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
