"""Recall of a home's HNSW index against exact top-k, with the bundle's own ALS vectors.

The ALS source asks the index for ``quota`` items (faiss searches with ef = max(ef_search,
quota)). This measures, for trained user factors of ``--users`` random users as queries:
recall@k of the HNSW search vs the exact inner-product top-k over every item factor, and the
search's CPU time per query (one thread), for each ``--k`` (candidate quota) and ``--ef``.

    python bench/ann_home.py --home /tmp/home --k 100,200,300 --ef 0,400,600 --json bench/results/ann_1m.json

(``--ef 0``: the quota itself, what serving uses by default.)
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("WINNOW__SECURITY__AUTH", "false")

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402


def measure(home: Path, ks: list[int], efs: list[int], users: int, seed: int = 0) -> dict:
    """Rows of (k, ef, recall@k, CPU ms per query p50/p99) for ``users`` random user factors."""
    from winnow.core.config import load_config
    from winnow.serving.service import Service

    svc = Service(load_config(home))
    try:
        rt = svc.runtime
        items, index = np.asarray(rt.als.item_factors_, np.float32), rt.index
        rng = np.random.default_rng(seed)
        pick = rng.choice(len(rt.als.user_factors_), min(users, len(rt.als.user_factors_)), replace=False)
        queries = np.asarray(rt.als.user_factors_[pick], np.float32)
        top = max(ks)
        exact = []
        for q in queries:  # exact top-k over every item factor (ties: any order; sets compared)
            s = items @ q
            part = np.argpartition(-s, top)[:top]
            exact.append(part[np.argsort(-s[part], kind="stable")])
        rows = []
        for k in ks:
            for ef in efs:
                hits, cpu = 0, []
                for q, truth in zip(queries, exact, strict=True):
                    c0 = time.thread_time()
                    ids, _ = index.search(q[None, :], k, ef_search=ef or k)
                    cpu.append(time.thread_time() - c0)
                    hits += len(np.intersect1d(ids[0][ids[0] >= 0], truth[:k]))
                ms = np.asarray(cpu) * 1e3
                rows.append({"k": k, "ef": max(ef or k, k), "recall": round(hits / (k * len(queries)), 4),
                             "cpu_p50_ms": round(float(np.percentile(ms, 50)), 3),
                             "cpu_p99_ms": round(float(np.percentile(ms, 99)), 3)})
                print(f"k {k:>4} ef {rows[-1]['ef']:>5}: recall {rows[-1]['recall']:.4f}  cpu p50 "
                      f"{rows[-1]['cpu_p50_ms']} ms p99 {rows[-1]['cpu_p99_ms']} ms", flush=True)
        return {"benchmark": "ann_home", "home": str(home), "items": int(len(items)), "dim": int(items.shape[1]),
                "queries": len(queries), "query_vectors": "trained ALS user factors of random users",
                "index": type(index).__name__, "rows": rows, "load_average": os.getloadavg()}
    finally:
        svc.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--home", required=True)
    ap.add_argument("--k", default="100,200,300")
    ap.add_argument("--ef", default="0,400,600", help="0: the quota (k) itself")
    ap.add_argument("--users", type=int, default=500)
    ap.add_argument("--json", required=True)
    args = ap.parse_args()
    out = measure(Path(args.home), [int(x) for x in args.k.split(",")], [int(x) for x in args.ef.split(",")],
                  args.users)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(out, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
