"""Ranking-stage latency: LightGBM prediction (and online features) for 500 candidates, one core.

    python bench/rank.py --json bench/results/rank.json [--data-dir ../shared/data]
        [--candidates 500] [--requests 1000]

Trains the funnel's ranker on ml-100k (per-user random 75/25 training part, the shipped
[ranker] config), then times, per request of ``--candidates`` rows on a single thread:
- ``predict``: Booster.predict(num_threads=1) on a float32 [n, F] matrix (the budget: <= 5 ms p99);
- ``lleaves_predict``: the same model compiled with lleaves (when installed), same outputs
  checked; timed INTERLEAVED with ``predict`` (each round runs both, in a seeded random order,
  on the same matrix), so the comparison sees the same machine state;
- ``predict_contrib``: the same with pred_contrib (explain=true);
- ``online_features``: OnlineFeatureState.features for one user's n candidates.
Every figure has both clocks (bench/timing.py): ``wall`` (what a request waits, including
waiting for a core on a shared machine) and ``thread_cpu`` (the work done); p99 only from
>= 1000 samples (``--requests`` each, default 2000), otherwise p95. Writes JSON, prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np
from timing import fmt, interleaved

from winnow.core.config import load_config
from winnow.evaluation.datasets import load_named_dataset
from winnow.evaluation.runner import split_dataset
from winnow.features import OnlineFeatureState
from winnow.training.stacked import StackedRanker
from winnow.training.ranker_data import generate_candidates


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data-dir", type=Path, default=None)
    ap.add_argument("--candidates", type=int, default=500)
    ap.add_argument("--requests", type=int, default=2000, help="timed calls per stage (p99 needs >= 1000)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, required=True)
    args = ap.parse_args(argv)
    cfg = load_config(Path("/nonexistent-winnow-home"))
    ds = load_named_dataset("ml-100k", cfg, data_dir=args.data_dir)
    split = split_dataset(ds, "random", seed=0)
    funnel = StackedRanker(ds, cfg).fit(split.train)
    ranker = funnel.ranker_
    assert ranker is not None and funnel.catalog_ is not None
    n = args.candidates
    # real candidate rows of real users: one user's list, topped up from other users' lists
    train_csr = split.train.to_csr(binary=True)
    users = np.flatnonzero(np.diff(train_csr.indptr) > 0)[:50]
    cands = generate_candidates(funnel.sources_, users, train_csr, per_source=cfg.ranker.per_source)
    x_all = funnel._features(split.train, cands)
    rng = np.random.default_rng(args.seed)
    x = np.ascontiguousarray(x_all[rng.choice(len(x_all), n, replace=len(x_all) < n)])

    res = {"candidates": n, "requests": args.requests, "seed": args.seed, "features": len(ranker.spec.names),
           "trees": ranker.best_iteration_, "num_leaves": cfg.ranker.num_leaves,
           "threads": 1, "lightgbm": __import__("lightgbm").__version__,
           "timing": "per request; wall = perf_counter, thread_cpu = thread_time (bench/timing.py); "
                     "p99 only from >= 1000 samples; predict and lleaves_predict interleaved in one loop"}
    predictors = {"predict": lambda: ranker.predict(x, num_threads=1)}
    try:  # compiled trees (optional: lleaves==1.3.0 with llvmlite==0.44.0, see docs/RANKING.md)
        import tempfile

        import lleaves

        keep = tempfile.TemporaryDirectory()  # the compiled model's files live until the process ends
        tmp = keep.name
        ranker.save(tmp)
        compiled = lleaves.Model(model_file=f"{tmp}/ranker.txt")
        t0 = time.perf_counter()
        compiled.compile(cache=f"{tmp}/ranker.so")
        res["lleaves_compile_s"] = time.perf_counter() - t0
        xd = x.astype(np.float64)
        same = np.allclose(compiled.predict(xd, n_jobs=1), ranker.predict(x), rtol=1e-6, atol=1e-6)
        res["lleaves_same_output"] = bool(same)
        predictors["lleaves_predict"] = lambda: compiled.predict(xd, n_jobs=1)
    except ImportError:
        res["lleaves_predict"] = None
    res.update(interleaved(predictors, args.requests, seed=args.seed))
    res["predict_contrib"] = interleaved({"c": lambda: ranker.contributions(x, num_threads=1)}, args.requests)["c"]

    state = OnlineFeatureState(funnel.catalog_, ranker.spec)
    tr = split.train
    for j in np.argsort(tr.timestamp, kind="stable"):
        state.add_event(int(tr.user[j]), int(tr.item[j]), int(tr.timestamp[j]))
    user = int(users[0])
    items = rng.choice(tr.n_items, n, replace=False)
    src = {s: rng.normal(size=n) for s in ranker.spec.sources}
    rank = {s: np.arange(n, dtype=float) for s in ranker.spec.sources}
    t_now = float(tr.timestamp.max() + 1)
    res["online_features"] = interleaved(
        {"f": lambda: state.features(user, items, t_now, src_score=src, src_rank=rank)}, args.requests)["f"]
    res["budget_p99_ms"] = 5.0  # judged on wall clock, the stricter of the two
    res["predict_within_budget"] = res["predict"]["wall"].get("p99_ms", np.inf) <= 5.0
    served = res["lleaves_predict"] or res["predict"]  # the service compiles with lleaves when installed
    res["served_predict_within_budget"] = served["wall"].get("p99_ms", np.inf) <= 5.0
    res["load_average"] = list(os.getloadavg())  # a shared machine inflates wall-clock tails
    res["niceness"] = os.nice(0)  # run under `nice` on a shared machine: wall clock is pessimistic
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(res, indent=2), encoding="utf-8")
    print(f"{n} candidates x {res['features']} features, {res['trees']} trees of <= {res['num_leaves']} leaves, "
          f"1 thread, {args.requests} requests per stage")
    print(f"{'stage':18} {'wall clock':>28} {'thread CPU':>28}")
    for key in ("predict", "lleaves_predict", "predict_contrib", "online_features"):
        if not res.get(key):
            continue
        print(f"{key:18} {fmt(res[key], 'wall'):>28} {fmt(res[key], 'thread_cpu'):>28}")
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
