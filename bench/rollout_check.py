"""What one canary decision check costs as the rollout's log grows: a full recomputation (every
impression and outcome of the rollout read again: what each check did before the incremental
aggregates) against an incremental look (winnow.rollout.arms.ArmTracker: only the rows that
arrived since the previous look).

A SQLite (or PostgreSQL, ``--url``) store gets a canary record and ``--impressions`` impressions
of it (2 arms, 10 items each, users drawn from ``--users``), with clicks carrying request ids on
``--click-rate`` of them. Measured (wall seconds, median of ``--repeats``):

- ``full``: ``collect`` (a fresh tracker reading everything) + ``evaluate`` (``--full-repeats``);
- ``old``: the previous implementation (``--old-arms FILE``: that version of
  winnow/rollout/arms.py, e.g. ``git show d96feb8:src/winnow/rollout/arms.py > /tmp/old_arms.py``),
  which also queried each impression's outcomes; optional;
- ``incremental``: after ``--new`` more impressions (and their clicks) arrive, one
  ``ArmTracker.update`` + ``arms`` + ``evaluate`` of a tracker that had looked before.
Also checked: the incremental look's arms equal the full recomputation's (requests, users,
metric values). JSON + a table.

Usage: python bench/rollout_check.py [--impressions 1000000] [--new 1000] [--json FILE]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from winnow.data.open_store import open_store
from winnow.data.rollouts import Rollout, RolloutDecision
from winnow.data.store import Store
from winnow.rollout.arms import ArmTracker, collect
from winnow.rollout.decide import evaluate

T0 = 1_700_000_000  # replaced in main: the log ends about now (the tracker's lag window is wall time)


def fill(store: Store, rid: int, start: int, n: int, *, users: int, items: int, click_rate: float,
         seed: int, batch: int = 20_000) -> None:
    """Log ``n`` impressions of rollout ``rid`` numbered from ``start`` (+ clicks on some)."""
    rng = np.random.default_rng(seed)
    for lo in range(start, start + n, batch):
        hi = min(lo + batch, start + n)
        imps, clicks = [], []
        for j in range(lo, hi):
            u = f"u{int(rng.integers(0, users))}"
            arm = "challenger" if hash(u) % 2 else "champion"
            slate = [f"i{int(x)}" for x in rng.choice(items, 10, replace=False)]
            imps.append({"request_id": f"r{j}", "user_id": u, "timestamp": T0 + j // 100, "model_version": arm,
                         "surface": "home", "context": {"rollout": {"id": rid, "arm": arm, "ms": float(rng.gamma(2, 2)),
                                                                   "error": False, "fallbacks": []}},
                         "items": [{"item_id": it, "position": p, "score": 1.0} for p, it in enumerate(slate)]})
            if rng.random() < click_rate:
                clicks.append((u, slate[int(rng.integers(0, 10))], T0 + j // 100, f"r{j}"))
        store.log_impressions(imps)
        if clicks:
            store.append_events(pd.DataFrame({
                "user_id": [c[0] for c in clicks], "item_id": [c[1] for c in clicks], "event_type": "click",
                "timestamp": [c[2] for c in clicks],
                "context": [json.dumps({"request_id": c[3]}) for c in clicks]}))


def timed(fn: Any, repeats: int) -> tuple[float, Any]:
    times, out = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times)), out


def summary(arms: dict, switched: int) -> dict[str, Any]:
    return {a: {"requests": v.requests, "users": len(v.users), "metric_sum": round(float(v.values.sum()), 9)}
            for a, v in arms.items()} | {"switched": switched}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--impressions", type=int, default=1_000_000)
    ap.add_argument("--new", type=int, default=1_000)
    ap.add_argument("--users", type=int, default=100_000)
    ap.add_argument("--items", type=int, default=5_000)
    ap.add_argument("--click-rate", type=float, default=0.05)
    ap.add_argument("--repeats", type=int, default=3, help="incremental looks (each after --new rows)")
    ap.add_argument("--full-repeats", type=int, default=1, help="full recomputations timed (median)")
    ap.add_argument("--old-arms", help="a previous winnow/rollout/arms.py to time as 'old'")
    ap.add_argument("--url", help="store URL (default: a fresh SQLite store in a temp dir)")
    ap.add_argument("--json")
    args = ap.parse_args()

    global T0
    T0 = int(time.time()) - args.impressions // 100 - 60
    tmp = tempfile.TemporaryDirectory(prefix="rollout-check-")
    store = open_store(args.url or f"sqlite:///{tmp.name}/store.db")
    r = store.start_rollout(Rollout(
        id=0, state="canary", revision=0, started=T0, challenger="20260101T000000Z-aaaaaa",
        champion="20251201T000000Z-bbbbbb", mode="canary", plan=(50, 100), step_started=T0,
        params={"metric": "ctr", "step_s": 60, "min_exposed": 10, "guardrails": {"min_coverage_ratio": 0.5}},
        decisions=(RolloutDecision(T0, 0, "operator", "start", {}),)))
    t = time.perf_counter()
    fill(store, r.id, 0, args.impressions, users=args.users, items=args.items, click_rate=args.click_rate, seed=0)
    fill_s = time.perf_counter() - t
    now = T0 + args.impressions // 100 + 1

    def full() -> tuple[dict, int]:
        arms, switched = collect(store, r)
        evaluate(r, arms, switched, now=now)
        return arms, switched

    full_s, (arms, switched) = timed(full, args.full_repeats)
    out: dict[str, Any] = {"impressions": args.impressions, "new": args.new, "users": args.users,
                           "click_rate": args.click_rate, "store": "postgresql" if args.url else "sqlite",
                           "fill_s": round(fill_s, 1), "full_s": round(full_s, 4)}
    if args.old_arms:
        spec = importlib.util.spec_from_file_location("old_arms", args.old_arms)
        assert spec is not None and spec.loader is not None
        old = importlib.util.module_from_spec(spec)
        sys.modules["old_arms"] = old  # dataclasses look their module up there
        spec.loader.exec_module(old)
        old_s, (old_arms, old_switched) = timed(lambda: old.collect(store, r), 1)
        out["old_s"] = round(old_s, 4)
        out["old_equal"] = summary(old_arms, old_switched) == summary(arms, switched)

    tracker = ArmTracker(r)
    t = time.perf_counter()
    tracker.update(store, now=time.time())
    out["first_look_s"] = round(time.perf_counter() - t, 4)
    looks = []
    start = args.impressions
    for k in range(args.repeats):
        fill(store, r.id, start, args.new, users=args.users, items=args.items, click_rate=args.click_rate,
             seed=k + 1)
        start += args.new
        t = time.perf_counter()
        with tracker.lock:
            tracker.update(store, now=time.time())
            inc_arms, inc_switched = tracker.arms(r.step_started)
            evaluate(r, inc_arms, inc_switched, now=now)
            inc = summary(inc_arms, inc_switched)
        looks.append(time.perf_counter() - t)
    out["incremental_s"] = round(float(np.median(looks)), 4)
    out["incremental_looks_s"] = [round(x, 4) for x in looks]
    out["incremental_equals_full"] = inc == summary(*collect(store, r))
    out["speedup"] = round(full_s / out["incremental_s"], 1)
    out["machine"] = {"python": platform.python_version(), "cpus": __import__("os").cpu_count()}
    store.close()
    tmp.cleanup()
    print(f"{'impressions':>12} {'full s':>8} {'old s':>8} {'incremental s':>14} {'equal':>6}")
    print(f"{args.impressions:>12} {out['full_s']:>8} {out.get('old_s', '-'):>8} {out['incremental_s']:>14} "
          f"{str(out['incremental_equals_full']):>6}")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
