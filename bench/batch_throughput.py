"""batch-recommend's throughput: the service's pipeline in batch mode vs the old bulk path, side by side.

    python bench/batch_throughput.py --world ml-100k --json bench/results/batch_throughput_ml100k.json
    python bench/batch_throughput.py --world synthetic:100000,10000,1000000 --users 20000 \\
        --json bench/results/batch_throughput_synthetic100k.json

One world, one config (the shipped defaults, ``[coldstart] items`` off so neither path fits a
two-tower), every user with events (or a seeded sample of ``--users`` of them), k = 10,
training items excluded, in one run so both paths share the machine's minute:
- ``old``: the path batch-recommend ran by default until stop 17, now ``--model stacked``:
  ``StackedRankerRecommender`` fitted on the events, then its bulk ``recommend`` over the users
  (candidates from every retrieval model in chunks of 2,048 users, one LightGBM call per chunk);
- ``served``: the default path now: ``offline.fit_served`` (import into a scratch home +
  `winnow train`) then ``ServedFunnel.recommend`` (the service's Pipeline per user, exploration
  off) with 1 process and with 2 (spawned; each loads the bundle).
Fit and answer phases are timed apart (wall seconds); users/s is the answer phase's. Both
lists' NDCG is not compared here (no test part): bench/funnel.py measures quality.
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

import numpy as np  # noqa: E402

from winnow.core.config import load_config  # noqa: E402
from winnow.data.importers import Imported  # noqa: E402
from winnow.data.training_data import dataset_from_frames  # noqa: E402
from winnow.evaluation.datasets import _DIRS, _synthetic, default_data_dir, read_directory  # noqa: E402
from winnow.offline import fit_served  # noqa: E402
from winnow.training.stacked import StackedRankerRecommender  # noqa: E402

K = 10


def _world(spec: str, data_dir: Path) -> Imported:
    return _synthetic(spec, 0) if spec.startswith("synthetic") else read_directory(data_dir / _DIRS[spec])


def run(spec: str, data_dir: Path, n_users: int | None, workers: list[int]) -> dict:
    imported = _world(spec, data_dir)
    cfg = load_config(Path("/nonexistent-winnow-home"), environ={}, overrides={"coldstart": {"items": False}})
    ds = dataset_from_frames(imported.events, imported.items, imported.users, cfg.events, name=spec)
    csr = ds.interactions.to_csr(binary=True)
    users = np.flatnonzero(np.diff(csr.indptr) > 0)
    if n_users is not None and n_users < len(users):
        users = np.sort(np.random.default_rng(0).choice(users, n_users, replace=False))
    out: dict = {"world": spec, "events": len(ds.interactions), "users_total": len(ds.user_ids),
                 "items": len(ds.item_ids), "users_answered": len(users), "k": K, "cpus": os.cpu_count(),
                 "loadavg_start": os.getloadavg()}
    t0 = time.perf_counter()
    old = StackedRankerRecommender(ds, cfg).fit(ds.interactions)
    t1 = time.perf_counter()
    old.recommend(users, K, exclude=csr)
    t2 = time.perf_counter()
    out["old"] = {"fit_s": t1 - t0, "answer_s": t2 - t1, "users_per_s": len(users) / (t2 - t1)}
    print(f"old: fit {t1 - t0:.0f} s, answer {t2 - t1:.1f} s ({len(users) / (t2 - t1):,.0f} users/s)",
          file=sys.stderr, flush=True)
    user_ext = [str(x) for x in ds.user_ids.decode(users)]
    exclude = [[str(x) for x in ds.item_ids.decode(csr[u].indices)] for u in users]
    with tempfile.TemporaryDirectory(prefix="winnow-throughput-") as home:
        t0 = time.perf_counter()
        served = fit_served(imported, cfg, Path(home))
        out["served"] = {"fit_s": time.perf_counter() - t0, "answer": {}}
        lists = {}
        for w in workers:
            t0 = time.perf_counter()
            lists[w] = served.recommend(user_ext, k=K, exclude=exclude, workers=w)
            dt = time.perf_counter() - t0
            out["served"]["answer"][str(w)] = {"answer_s": dt, "users_per_s": len(users) / dt}
            print(f"served, {w} process(es): answer {dt:.1f} s ({len(users) / dt:,.0f} users/s)",
                  file=sys.stderr, flush=True)
        ref = lists[workers[0]]
        out["served"]["same_lists_for_every_worker_count"] = all(
            [(a.items, a.scores) for a in lists[w]] == [(a.items, a.scores) for a in ref] for w in workers)
    out["loadavg_end"] = os.getloadavg()
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--world", default="ml-100k", help="ml-100k | ml-latest-small | lastfm | synthetic:U,I,E")
    ap.add_argument("--users", type=int, default=None, help="answer a seeded sample of this many users")
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--data-dir", type=Path, default=None)
    ap.add_argument("--json", type=Path, required=True)
    args = ap.parse_args(argv)
    res = run(args.world, args.data_dir or default_data_dir(), args.users,
              [int(w) for w in args.workers.split(",")])
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(res, indent=2), encoding="utf-8")
    print(f"{'path':28} {'fit s':>8} {'answer s':>9} {'users/s':>9}")
    print(f"{'old (stacked, bulk)':28} {res['old']['fit_s']:8.0f} {res['old']['answer_s']:9.1f} "
          f"{res['old']['users_per_s']:9,.0f}")
    for w, a in res["served"]["answer"].items():
        print(f"{'served pipeline, ' + w + ' proc':28} {res['served']['fit_s']:8.0f} {a['answer_s']:9.1f} "
              f"{a['users_per_s']:9,.0f}")
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
