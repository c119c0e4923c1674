"""Cost of one live drift comparison (``evaluation.drift_report.compare_live``, what the
service's drift monitor runs once per home per ``[drift] refresh_s``) on synthetic SQLite stores
of several sizes, with the served-slate part as it was before (``--before`` git revision's
``evaluation/drift_served.py``, loaded from git, not copied) and as it is now, side by side in
one run on the same store. Both must give the same report (checked; a difference fails the run).

Each store: ``n`` events over the last 6 days (one live window of 7), users clicking/viewing/
purchasing items with a skewed popularity, and one logged slate of 10 items (the clicked item
among them, with a score and a source score) before every 4th event, so shown items ~ 2.5 x n.
Writes JSON (wall and CPU seconds of the whole comparison and of its served part, and the
comparison's peak RSS growth above the process's RSS before it, sampled every 20 ms, per size and
implementation) and prints a table. ``--before none`` measures the current implementation only
(the scale runs: the old loop is minutes per 10^6 events).
Usage: python bench/drift_cost.py [--sizes 250000,1000000] [--before REV|none] [--json PATH] [--dir DIR]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from winnow.core.config import load_config
from winnow.data.open_store import open_store
from winnow.evaluation import drift_profile, drift_served
from winnow.evaluation.drift_profile import ranker_profile, reference_profile
from winnow.evaluation.drift_report import compare_live

ROOT = Path(__file__).resolve().parents[1]
SLATE = 10
VERSION = "bench-v1"


def _old_served(rev: str) -> Callable[..., dict[str, Any]]:
    """``served_profile`` as of git revision ``rev`` (executed from ``git show``)."""
    code = subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:src/winnow/evaluation/drift_served.py"],
                          check=True, capture_output=True, text=True).stdout
    mod = types.ModuleType(f"drift_served_{rev}")
    exec(compile(code, f"{rev}:drift_served.py", "exec"), mod.__dict__)  # noqa: S102 - our own history
    return mod.served_profile


def build(home: Path, n: int, *, seed: int = 0) -> tuple[Any, Any, dict[str, Any], int]:
    """A store of ``n`` events + n/4 slates (module docstring): (config, store, reference, until)."""
    home.mkdir(parents=True, exist_ok=True)
    (home / "winnow.toml").write_text("[drift]\nwindow_days = 7\n")
    cfg = load_config(home)
    store = open_store(cfg.store_url())
    rng = np.random.default_rng(seed)
    until = int(time.time()) + 1
    n_users, n_items = max(n // 50, 100), 20_000
    ts = np.sort(rng.integers(until - 6 * 86400, until - 1, n))
    users = rng.integers(0, n_users, n)
    items = np.minimum(rng.zipf(1.3, n) - 1, n_items - 1)
    kinds = rng.choice(np.array(["view", "click", "purchase"]), n, p=[0.6, 0.35, 0.05])
    store.append_events(pd.DataFrame({"user_id": [f"u{u}" for u in users], "item_id": [f"i{i}" for i in items],
                                      "event_type": kinds, "value": np.nan, "timestamp": ts,
                                      "event_id": [f"e{k}" for k in range(n)], "context": None}))
    imps = []
    for k in range(0, n, 4):
        shown = [int(items[k])] + [int(x) for x in rng.integers(0, n_items, SLATE - 1)]
        scores = rng.random(SLATE)
        imps.append({"request_id": f"r{k}", "user_id": f"u{users[k]}", "timestamp": int(ts[k]) - 3,
                     "model_version": VERSION, "context": {},
                     "items": [{"item_id": f"i{it}", "position": p, "score": float(scores[p]), "propensity": 1.0,
                                "src": {"als": [float(scores[p]) * 2, p]}} for p, it in enumerate(shown)]})
        if len(imps) == 20_000:
            store.log_impressions(imps)
            imps = []
    if imps:
        store.log_impressions(imps)
    x = rng.random((5000, 2))
    y = (rng.random(5000) < 0.2).astype(float)
    rk = ranker_profile(["a", "b"], x, y, rng.random(5000), labels="impressions")
    ref = reference_profile(store, cfg, until=until, ranker=rk)
    return cfg, store, ref, until


def _timed(fn: Callable[[], Any]) -> tuple[Any, float, float]:
    w0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w0, time.process_time() - c0


def _rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_growth(fn: Callable[[], Any]) -> tuple[Any, float]:
    """(fn(), the largest RSS above the RSS before the call, MiB, sampled every 20 ms)."""
    base, peak, done = _rss_mib(), [0.0], threading.Event()

    def sample() -> None:
        while not done.wait(0.02):
            peak[0] = max(peak[0], _rss_mib() - base)
    t = threading.Thread(target=sample, daemon=True)
    t.start()
    try:
        out = fn()
    finally:
        done.set()
        t.join()
    return out, max(peak[0], _rss_mib() - base)


def measure(cfg: Any, store: Any, ref: dict[str, Any], until: int, served: Callable[..., dict[str, Any]]) -> dict:
    """Wall / CPU seconds of compare_live and of its served part with ``served`` as the served
    profile, and the comparison's peak RSS growth (MiB)."""
    drift_profile.served_profile = served  # what window_profile calls
    try:
        since = int(until - cfg.drift.window_days * 86400)
        edges = ref["ranker"]["calibration"]["edges"]
        part, sw, sc = _timed(lambda: served(store, cfg, since=since, until=until, calibration=(VERSION, edges)))
        gc.collect()
        (rep, w, c), grew = _peak_growth(lambda: _timed(lambda: compare_live(cfg, store, VERSION, ref, until=until)))
    finally:
        drift_profile.served_profile = drift_served.served_profile
    return {"compare_wall_s": round(w, 3), "compare_cpu_s": round(c, 3), "served_wall_s": round(sw, 3),
            "served_cpu_s": round(sc, 3), "served_items": part["served_items"],
            "compare_peak_rss_growth_mib": round(grew, 1), "report": rep}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="250000,1000000")
    ap.add_argument("--before", default="979e8dd",
                    help="git revision of the per-impression loop version, or none (the current one only)")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--dir", type=Path, help="where the stores are built (default: a temp dir)")
    args = ap.parse_args(argv)
    old = None if args.before == "none" else _old_served(args.before)
    rows = []
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        for n in (int(s) for s in args.sizes.split(",")):
            (cfg, store, ref, until), build_s, _ = _timed(lambda: build(Path(tmp) / f"n{n}", n))
            try:
                after = measure(cfg, store, ref, until, drift_served.served_profile)
                before = measure(cfg, store, ref, until, old) if old is not None else dict(after)
            finally:
                store.close()
            same = before.pop("report") == after.pop("report")
            rows.append({"events": n, "build_s": round(build_s, 1), "before": before, "after": after,
                         "same_report": same})
            print(f"n={n:,}: built in {build_s:.0f} s; before {before}; after {after}; same report: {same}",
                  file=sys.stderr)
    out = {"bench": "drift_cost", "before_rev": args.before, "python": platform.python_version(),
           "machine": platform.machine(), "cpus": __import__("os").cpu_count(), "rows": rows}
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n")
    print(f"{'events':>10} {'shown items':>12} | {'compare wall/cpu before':>24} {'after':>14} | "
          f"{'served part before':>19} {'after':>14} | same")
    for r in rows:
        b, a = r["before"], r["after"]  # --before none: both columns are the current implementation
        print(f"{r['events']:>10,} {a['served_items']:>12,} | {b['compare_wall_s']:>11.2f} / {b['compare_cpu_s']:<10.2f}"
              f" {a['compare_wall_s']:>6.2f} / {a['compare_cpu_s']:<5.2f} | {b['served_wall_s']:>8.2f} / "
              f"{b['served_cpu_s']:<8.2f} {a['served_wall_s']:>6.2f} / {a['served_cpu_s']:<5.2f} | {r['same_report']}")
    for r in rows:
        print(f"{r['events']:>10,} events: comparison peak RSS growth {r['after']['compare_peak_rss_growth_mib']} MiB")
    if not all(r["same_report"] for r in rows):
        raise SystemExit("the two implementations disagree: see the JSON")
    return out


if __name__ == "__main__":
    main()
