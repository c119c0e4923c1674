"""What a drift comparison costs the champion: open-loop latency at a fixed rate with and without
one comparison of the server's drift monitor child running, for one or more source trees.

For each ``--variant NAME=SRC`` (a source tree on PYTHONPATH, e.g. before and after a change to
how the monitor is scheduled): start ``winnow serve`` on ``--home``, let its start-up comparison
finish, warm up, run a row with no comparison, then force one (``POST /v1/admin/drift/refresh``,
off the load's path) and run a row while it computes. Each row records the server tree's CPU by
process (the monitor child, the workers), so a monitor that takes the workers' cores shows.

Make the comparison long enough to overlap the row: on a home with many logged slates, raise the
sample caps (``WINNOW__DRIFT__SERVED_MAX_IMPRESSIONS`` / ``..._EVENTS``) in the environment.

    WINNOW__DRIFT__SERVED_MAX_IMPRESSIONS=100000000 WINNOW__DRIFT__SERVED_MAX_EVENTS=100000000 \\
    python bench/drift_sched.py --home H --variant before=<old tree>/src --variant after=src --json OUT
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
import serve  # noqa: E402  (running_server, load_users, row, tree_cpu_s)


def variant(home: Path, name: str, src: Path, args: argparse.Namespace) -> list[dict]:
    """The two rows (no comparison, during one) of one source tree's server on ``home``."""
    rows: list[dict] = []
    with serve.running_server(home, src, args.workers) as (proc, url):
        paths = [f"/v1/users/{u}/recommendations?k=20" for u in serve.load_users(home, src, args.active_users)]
        httpx.post(url + "/v1/admin/drift/refresh", timeout=900)  # the start-up comparison, finished
        serve.row("warm-up c=4", url, paths, 8.0, proc.pid, conns=4)
        for during in (False, True):
            ask = threading.Thread(target=lambda: httpx.post(url + "/v1/admin/drift/refresh", timeout=900))
            if during:
                ask.start()
                time.sleep(1.0)  # the monitor wakes and starts reading
            before = serve.tree_cpu_s(proc.pid)
            r = serve.row(f"{name} {'during a comparison' if during else 'no comparison'}", url, paths,
                          args.duration, proc.pid, rate=args.rate)
            after = serve.tree_cpu_s(proc.pid)
            r.update(variant=name, during=during, cpu_s_by_pid={
                str(p): round(after[p] - before.get(p, 0.0), 2) for p in after if after[p] - before.get(p, 0.0) > 0.2})
            print(f"    cpu by pid: {r['cpu_s_by_pid']}", flush=True)
            rows.append(r)
            if during:
                ask.join(900)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--home", type=Path, required=True)
    ap.add_argument("--variant", action="append", required=True, help="NAME=SRC (repeat)")
    ap.add_argument("--rate", type=float, default=300.0)
    ap.add_argument("--duration", type=float, default=15.0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--active-users", type=int, default=5000)
    ap.add_argument("--json", type=Path, required=True)
    args = ap.parse_args()
    out: dict = {"benchmark": "drift_sched", "home": str(args.home), "rate": args.rate, "duration_s": args.duration,
                 "overrides": {k: v for k, v in os.environ.items() if k.startswith("WINNOW__")}, "variants": {}}
    for spec in args.variant:
        name, src = spec.split("=", 1)
        out["variants"][name] = {"src": src, "rows": variant(args.home, name, Path(src), args)}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(out, indent=2), encoding="utf-8")
    print("| variant | comparison running | req/s | p50 ms | p99 ms | CPU s by process |\n"
          "|---|---|---|---|---|---|")
    for name, v in out["variants"].items():
        for r in v["rows"]:
            print(f"| {name} | {r['during']} | {r['achieved_rps']} | {r['p50_ms']} | {r['p99_ms']} | "
                  f"{r['cpu_s_by_pid']} |")


if __name__ == "__main__":
    main()
