"""Two-tower serving latency: one user-tower forward pass per request (1 torch thread), plus the
ANN search over the item vectors. Writes bench/results/two_tower.json and prints a table.

    .venv/bin/python bench/two_tower.py [--dataset ml-latest-small] [--requests 2000] [--tuned]

Requests mix the cold paths: a user with history (50 items), one with attributes + interests
only, and one with a text query. Fit time (training on 2 threads max, see [models.two_tower]
threads) is reported too.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np
import torch

from winnow.core.config import load_config
from winnow.evaluation.datasets import load_named_dataset
from winnow.index import build_index
from winnow.models.two_tower import TwoTowerRecommender

try:
    from tune_two_tower import tuned_params
except ImportError:  # imported as a module from elsewhere
    from bench.tune_two_tower import tuned_params

RESULTS = Path(__file__).resolve().parent / "results"


def _pct(ms: list[float]) -> dict[str, float]:
    a = np.asarray(ms)
    return {"p50_ms": round(float(np.percentile(a, 50)), 3), "p99_ms": round(float(np.percentile(a, 99)), 3),
            "mean_ms": round(float(a.mean()), 3)}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="ml-latest-small")
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--text", default="tfidf", choices=["tfidf", "minilm", "none"])
    ap.add_argument("--tuned", action="store_true", help="use config/tuned/two_tower_<dataset>.json")
    args = ap.parse_args(argv)
    cfg = load_config(home=Path("/tmp/winnow-bench-home"))
    ds = load_named_dataset(args.dataset, cfg)
    tuned = tuned_params(args.dataset) if args.tuned else {}
    model = TwoTowerRecommender.from_config(cfg.models.two_tower.model_copy(update={**tuned, "text_backend": args.text}))
    model.with_side_info(ds.items, ds.users)
    model.progress = True
    t0, c0 = time.perf_counter(), time.process_time()
    model.fit(ds.interactions)
    fit_s, fit_cpu = time.perf_counter() - t0, time.process_time() - c0
    torch.set_num_threads(1)
    vectors = model.index_vectors()  # item vectors (+ the item bias column with item_bias)
    index = build_index(cfg.index, vectors.shape[1], len(vectors), threads=1)
    index.upsert(np.arange(len(vectors), dtype=np.int64), vectors)
    rng = np.random.default_rng(0)
    n_items = model.n_items_
    cats = list(model.structure_.categories_)[:3]
    query = model.encode_query("space adventure comedy")
    kinds = {"history": [], "attributes+interests": [], "query": [], "ann_search_k100": []}
    cpu: dict[str, list[float]] = {k: [] for k in kinds}
    for r in range(args.requests):
        hist = rng.integers(0, n_items, 50).tolist()
        for kind in ("history", "attributes+interests", "query"):
            t, c = time.perf_counter(), time.thread_time()
            if kind == "history":
                v = model.user_vector(history=hist, user=int(rng.integers(0, model.n_users_)), hour=r % 24, dow=r % 7)
            elif kind == "attributes+interests":
                v = model.user_vector(attributes={"age": 30, "gender": "F"}, interests=cats)
            else:
                v = model.user_vector(history=hist[:5], query=query)
            kinds[kind].append(1000 * (time.perf_counter() - t))
            cpu[kind].append(1000 * (time.thread_time() - c))
        t, c = time.perf_counter(), time.thread_time()
        index.search(model.index_query(v)[None, :], 100)
        kinds["ann_search_k100"].append(1000 * (time.perf_counter() - t))
        cpu["ann_search_k100"].append(1000 * (time.thread_time() - c))
    rows = {k: _pct(v[50:]) for k, v in kinds.items()}  # first 50: warm-up
    # CPU time of the request's thread: what a request costs without other processes on the cores
    cpu_rows = {k: _pct(v[50:]) for k, v in cpu.items()}
    print(f"\nTwo-tower per-request latency, {args.dataset} ({n_items} items), 1 thread, "
          f"{args.requests} requests; fit {fit_s:.1f} s wall, {fit_cpu:.1f} s CPU")
    print(f"{'path':28s}{'p50 ms':>10s}{'p99 ms':>10s}{'mean ms':>10s}")
    for k, r in rows.items():
        print(f"{k:28s}{r['p50_ms']:>10.3f}{r['p99_ms']:>10.3f}{r['mean_ms']:>10.3f}")
    print("thread CPU time per request (independent of other load on the machine):")
    for k, r in cpu_rows.items():
        print(f"{k:28s}{r['p50_ms']:>10.3f}{r['p99_ms']:>10.3f}{r['mean_ms']:>10.3f}")
    RESULTS.mkdir(exist_ok=True)
    out = {"dataset": args.dataset, "n_items": n_items, "requests": args.requests, "text": args.text, "tuned": tuned,
           "fit_seconds": round(fit_s, 1), "fit_cpu_seconds": round(fit_cpu, 1), "history": model.history_, "latency": rows,
           "latency_thread_cpu": cpu_rows}
    (RESULTS / "two_tower.json").write_text(json.dumps(out, indent=2, default=float), encoding="utf-8")


if __name__ == "__main__":
    main()
