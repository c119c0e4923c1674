"""Cost of the drift monitor's live ranker-feature profile (``evaluation.drift_features.
live_features``: a sample of the slates the ACTIVE bundle served, their ranker features
recomputed point-in-time from the store), on a copy of a trained home.

The copy first serves ``--requests`` recommendations in this process (``Service.recommend``,
k = 10, random known users: the impressions the bundle logs), then each shown slate gets a click
on its first item 30 s later with probability ``--click`` (seeded), so slates carry positives as
they would live. Then, for each ``--slates`` bound, ``live_features`` runs ``--repeat`` times over
the window holding that traffic: wall and CPU seconds (median), slates sampled, labelled, rows,
and the events the features read. The home's own traffic is never touched (the copy is removed).

    python bench/drift_features_cost.py --home /tmp/home --requests 6000 --slates 500,2000,8000 \
        --json bench/results/drift_features_cost.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("WINNOW__SECURITY__AUTH", "false")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from homes import copy_home


def serve_and_click(home: Path, requests: int, click: float, seed: int) -> tuple[str, int, int]:
    """Serve ``requests`` slates from ``home``'s ACTIVE bundle and log the clicks; (version, first
    request's time, last request's time)."""
    from winnow.core.config import load_config
    from winnow.serving.service import Service

    svc = Service(load_config(home))
    rng = np.random.default_rng(seed)
    try:
        users = [str(u) for u in svc.store.read_users()["user_id"]]
        t0 = int(time.time())
        clicks = []
        for n in range(requests):
            u = users[int(rng.integers(len(users)))]
            _, rid, slate = svc.recommend(u, k=10, surface="default", exclude=[], explain=False,
                                          categories=None, context={}, now=float(t0 + n))
            if slate.items and rng.random() < click:
                item = svc.runtime.catalog.item_ids.decode([slate.items[0].item])[0]
                clicks.append({"user_id": u, "item_id": item, "event_type": "click", "value": np.nan,
                               "timestamp": t0 + n + 30, "event_id": f"bench-click-{n}",
                               "context": json.dumps({"request_id": rid})})
        svc.impressions.flush()
        svc.store.append_events(pd.DataFrame(clicks))
        return svc.runtime.version, t0, t0 + requests
    finally:
        svc.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--home", required=True, help="a trained home with a learned ranker (copied)")
    ap.add_argument("--requests", type=int, default=6000)
    ap.add_argument("--click", type=float, default=0.3)
    ap.add_argument("--slates", default="500,2000,8000")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", required=True)
    args = ap.parse_args()
    from winnow.bundle import bundles_dir
    from winnow.core.config import load_config
    from winnow.data.open_store import open_store
    from winnow.evaluation.drift_features import feature_inputs, live_features

    home = Path(f"{args.home.rstrip('/')}-featcost")
    if home.exists():
        shutil.rmtree(home)
    copy_home(args.home, home)
    try:
        version, first, last = serve_and_click(home, args.requests, args.click, args.seed)
        cfg = load_config(home)
        inputs = feature_inputs(str(bundles_dir(home) / version))
        if inputs is None:
            raise SystemExit(f"bundle {version} has no learned ranker: nothing to profile")
        store = open_store(cfg.store_url())
        rows = []
        try:
            n_events = len(store.read_events(until=last + 60))
            for bound in (int(s) for s in args.slates.split(",")):
                c = cfg.model_copy(update={"drift": cfg.drift.model_copy(update={"feature_slates": bound})})
                wall, cpu, out = [], [], {}
                for _ in range(args.repeat):
                    w0, c0 = time.perf_counter(), time.process_time()
                    out = live_features(store, c, inputs, version=version, since=first, until=last + 60)
                    wall.append(time.perf_counter() - w0)
                    cpu.append(time.process_time() - c0)
                rows.append({"feature_slates": bound, "slates": out["slates"], "labelled_slates": out["labelled_slates"],
                             "rows": out["rows"], "features": len(out["features"]),
                             "wall_s": round(statistics.median(wall), 3), "cpu_s": round(statistics.median(cpu), 3)})
                print(rows[-1], flush=True)
        finally:
            store.close()
    finally:
        shutil.rmtree(home, ignore_errors=True)
    result = {"benchmark": "drift_features_cost", "home": args.home, "bundle": version, "requests": args.requests,
              "click": args.click, "events_read": n_events, "repeat": args.repeat, "rows": rows,
              "load_average": os.getloadavg(),
              "note": "one live_features call = the monitor's ranker-feature profile per refresh_s; medians"}
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=2), encoding="utf-8")
    print("| feature_slates | sampled | labelled | rows | wall s | CPU s |\n|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['feature_slates']} | {r['slates']} | {r['labelled_slates']} | {r['rows']} | {r['wall_s']} | {r['cpu_s']} |")
    print(f"events read: {n_events:,}")


if __name__ == "__main__":
    main()
