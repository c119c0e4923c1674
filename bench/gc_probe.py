"""The cyclic garbage collector in a serving process: how often it runs, how long, what it finds.

A ``Service`` on ``--home`` (the active bundle, as a worker serves it) answers ``--requests``
``Service.recommend`` calls for users of the store, in one process, with a ``gc.callbacks``
probe timing every collection. Reports per generation the count, total and longest pause, the
objects each full collection found (cyclic garbage), request latency p50/p99/max, and the
tracked vs frozen object counts (serving.swap.settle freezes the runtime). JSON + a summary.

    PYTHONPATH=src python bench/gc_probe.py --home /tmp/home --requests 8000 \
        --json bench/results/gc_probe.json

The run logs impressions into the home's store: use a copy.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--home", required=True)
    ap.add_argument("--requests", type=int, default=8000)
    ap.add_argument("--users", type=int, default=5000, help="requests pick among this many users")
    ap.add_argument("--json", required=True)
    args = ap.parse_args()
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    from winnow.core.config import load_config
    from winnow.serving.service import Service

    svc = Service(load_config(args.home))
    try:
        users = svc.store.read_users()["user_id"].astype(str).tolist()[:args.users]
        events: list[tuple[int, float, int]] = []
        started = [0.0]

        def probe(phase: str, info: dict) -> None:
            if phase == "start":
                started[0] = time.perf_counter()
            else:
                events.append((info["generation"], (time.perf_counter() - started[0]) * 1e3, info.get("collected", 0)))

        gc.callbacks.append(probe)
        rng = random.Random(1)
        lat = []
        t0 = time.perf_counter()
        for _ in range(args.requests):
            t = time.perf_counter()
            svc.recommend(rng.choice(users), k=20, surface="default", exclude=[], explain=False, categories=None,
                          context={})
            lat.append((time.perf_counter() - t) * 1e3)
        wall = time.perf_counter() - t0
        gc.callbacks.remove(probe)
        lat.sort()
        gens = {}
        for g in (0, 1, 2):
            d = [e for e in events if e[0] == g]
            gens[g] = {"count": len(d), "total_ms": round(sum(e[1] for e in d), 1),
                       "max_ms": round(max((e[1] for e in d), default=0.0), 1),
                       "collected": sum(e[2] for e in d)}
        out = {"benchmark": "gc_probe", "home": str(args.home), "requests": args.requests, "wall_s": round(wall, 1),
               "latency_ms": {"p50": round(lat[len(lat) // 2], 2), "p99": round(lat[int(len(lat) * 0.99)], 2),
                              "max": round(lat[-1], 1)},
               "generations": gens, "full_collections": [(round(e[1], 1), e[2]) for e in events if e[0] == 2],
               "tracked_objects": len(gc.get_objects()), "frozen_objects": gc.get_freeze_count()}
    finally:
        svc.close()
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(out, indent=2), encoding="utf-8")
    print("| generation | collections | total ms | longest ms | objects collected |\n|---|---|---|---|---|")
    for g, s in gens.items():
        print(f"| {g} | {s['count']} | {s['total_ms']} | {s['max_ms']} | {s['collected']} |")
    print(f"requests {args.requests} in {wall:.1f} s; latency {out['latency_ms']}; tracked {out['tracked_objects']}, "
          f"frozen {out['frozen_objects']}")


if __name__ == "__main__":
    main()
