"""Time winnow.data.synthetic.generate_world at benchmark scale (default 1M items x 10M events).

Writes JSON (wall and CPU seconds, peak RSS, frame sizes, event-type mix, and the seconds the
splits and evaluate_recs take on the generated events) and prints a summary table.
Usage: python bench/synthetic.py [--users N] [--items N] [--events N] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from winnow.data.interactions import Interactions
from winnow.data.synthetic import SyntheticWorld, generate_world
from winnow.metrics import evaluate_recs
from winnow.evaluation.splits import leave_last_split, stratified_split, temporal_split


def _index(ids: object) -> np.ndarray:
    """Dense index of the synthetic ids ``u<k>`` / ``i<k>`` (their number is the index)."""
    return pc.cast(pc.utf8_slice_codeunits(pa.array(ids), 1), pa.int32()).to_numpy()


def time_evaluation(world: SyntheticWorld, k: int = 10) -> dict[str, float]:
    """Seconds for each split and for evaluate_recs (popularity top-k for every user)."""
    ev = world.events
    inter = Interactions.from_arrays(_index(ev["user_id"]), _index(ev["item_id"]),
                                     timestamp=ev["timestamp"].to_numpy(),
                                     n_users=len(world.users), n_items=len(world.items))
    out: dict[str, float] = {}
    for name, fn in (("stratified_split_s", lambda: stratified_split(inter, 0.75, seed=0)),
                     ("temporal_split_s", lambda: temporal_split(inter, 0.8)),
                     ("leave_last_split_s", lambda: leave_last_split(inter, 1))):
        t0 = time.perf_counter()
        split = fn()
        out[name] = round(time.perf_counter() - t0, 2)
    split = stratified_split(inter, 0.75, seed=0)
    top = np.argsort(-split.train.item_counts(), kind="stable")[:k]
    recs = np.tile(top, (inter.n_users, 1))
    t0 = time.perf_counter()
    metrics = evaluate_recs(recs, split.test, k=k, train=split.train,
                            item_categories=list(world.items["categories"]))
    out["evaluate_recs_s"] = round(time.perf_counter() - t0, 2)
    out["popularity_ndcg"] = round(metrics[f"ndcg@{k}"], 4)
    out["evaluated_users"] = int(metrics["n_users"])
    return out


def main(argv: list[str] | None = None) -> dict[str, object]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=500_000)
    ap.add_argument("--items", type=int, default=1_000_000)
    ap.add_argument("--events", type=int, default=10_000_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-eval", action="store_true", help="skip timing splits and metrics")
    ap.add_argument("--json", type=Path, default=Path("bench/results/synthetic.json"))
    args = ap.parse_args(argv)

    t0 = time.perf_counter()
    world = generate_world(args.users, args.items, args.events, seed=args.seed)
    seconds = time.perf_counter() - t0
    gen_cpu = resource.getrusage(resource.RUSAGE_SELF)
    peak_rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    ev = world.events
    result: dict[str, object] = {
        "benchmark": "synthetic.generate_world",
        "n_users": args.users, "n_items": args.items, "n_events": args.events, "seed": args.seed,
        "seconds": round(seconds, 2),
        "generate_cpu_seconds": round(gen_cpu.ru_utime + gen_cpu.ru_stime, 1),
        "events_per_second": round(args.events / seconds),
        "peak_rss_mib": round(peak_rss_mib, 1),
        "events_frame_mib": round(ev.memory_usage(deep=True).sum() / 2**20, 1),
        "items_frame_mib": round(world.items.memory_usage(deep=True).sum() / 2**20, 1),
        "distinct_users_with_events": int(ev["user_id"].nunique()),
        "distinct_items_with_events": int(ev["item_id"].nunique()),
        "event_types": {k: int(v) for k, v in ev["event_type"].value_counts().items()},
        "python": sys.version.split()[0], "machine": platform.machine(),
    }
    if not args.no_eval:
        result["evaluation"] = time_evaluation(world)
        result["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    cpu = resource.getrusage(resource.RUSAGE_SELF)
    result["cpu_seconds_total"] = round(cpu.ru_utime + cpu.ru_stime, 1)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{'metric':<28}{'value':>16}")
    for key in ("n_users", "n_items", "n_events", "seconds", "events_per_second", "peak_rss_mib",
                "events_frame_mib", "items_frame_mib", "distinct_items_with_events"):
        print(f"{key:<28}{result[key]:>16}")
    for key, value in result.get("evaluation", {}).items():
        print(f"{key:<28}{value:>16}")
    return result


if __name__ == "__main__":
    main()
