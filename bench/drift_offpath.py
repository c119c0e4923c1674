"""What the live drift comparison costs the serving workers: before (computed inside a serving
worker, the code of ``--before-src``) vs after (computed in the monitor process ``winnow serve``
starts, this tree), side by side on one home, one machine, one load.

Each variant starts ``winnow serve`` (``--workers`` processes) on the same home with ``[drift]
refresh_s`` = ``--refresh`` and ``window_days`` = ``--window-days`` (the default covers all of
MovieLens' years, so a comparison reads every event and served slate: seconds of CPU, as in a
busy production window), then runs ``--rows`` open-loop rows of ``--duration`` s at ``--rate``
req/s (bench/loadgen.py: latency from each request's scheduled time). For every row it records
whether a comparison ran during it (the home's shared ``<home>/drift/live.json`` numbers the
comparisons and holds the last one's start and end: a row contains a comparison when their times
overlap), and the CPU seconds of the serving processes (dispatcher +
workers) and of the monitor process apart, per request. The summary compares the rows that
contain a comparison with those that do not, per variant.

    python bench/drift_offpath.py --movielens ../shared/data/ml-latest-small --home /tmp/dop-home \
        --before-src /tmp/drift-before/src --json bench/results/drift_offpath.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
import loadgen  # noqa: E402
import serve  # noqa: E402  (build, running_server, load_users)

def processes(root: int) -> dict[int, tuple[float, bool]]:
    """pid -> (user + system CPU seconds, is the drift monitor) for ``root`` and its descendants."""
    out = {}
    for pid, cpu in serve.tree_cpu_s(root).items():
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            cmd = []
        out[pid] = (cpu, b"drift" in cmd and b"monitor" in cmd)
    return out


def cpu_split(before: dict[int, tuple[float, bool]], after: dict[int, tuple[float, bool]]) -> tuple[float, float]:
    """(serving CPU s, monitor CPU s) spent between two ``processes`` readings."""
    serving = monitor = 0.0
    for pid, (c, is_mon) in after.items():
        d = c - before.get(pid, (0.0, is_mon))[0]
        if is_mon:
            monitor += d
        else:
            serving += d
    return serving, monitor


def last_comparison(home: Path) -> tuple[int, float, float] | None:
    """(number, started, ended) of the home's latest comparison, wall seconds, from the shared
    file (``started_at``, or ``attempted_at - compute_s`` in files written before it existed)."""
    try:
        d = json.loads((home / "drift" / "live.json").read_text())
    except (OSError, ValueError):
        return None
    end = float(d["attempted_at"])
    return int(d["computations"]), float(d.get("started_at") or end - float(d["compute_s"])), end


def variant(name: str, src: Path, home: Path, paths: list[str], args: argparse.Namespace) -> list[dict]:
    os.environ["WINNOW__DRIFT__REFRESH_S"] = str(args.refresh)
    os.environ["WINNOW__DRIFT__WINDOW_DAYS"] = str(args.window_days)
    rows = []
    with serve.running_server(home, src, args.workers) as (proc, url):
        loadgen.run(url, paths, duration_s=args.warmup, rate=args.rate)  # warm-up, not recorded
        first = last_comparison(home)
        end = time.time() + 600
        while last_comparison(home) == first and time.time() < end:  # this server's first comparison ran
            loadgen.run(url, paths, duration_s=2.0, rate=args.rate)
        spans = {}  # comparison number -> (started, ended): read after every row (rows are shorter than refresh_s)
        for i in range(args.rows):
            p0, t0 = processes(proc.pid), time.time()
            r = loadgen.run(url, paths, duration_s=args.duration, rate=args.rate).summary()
            t1 = time.time()
            serving_s, monitor_s = cpu_split(p0, processes(proc.pid))
            if (c := last_comparison(home)) is not None:
                spans[c[0]] = c[1:]
            n = max(r["requests"], 1)
            row = {"variant": name, "row": i, "t0": t0, "t1": t1, "requests": r["requests"],
                   "achieved_rps": r["achieved_rps"], "errors": r["errors"], "p50_ms": r["p50_ms"],
                   "p99_ms": r["p99_ms"], "max_ms": r["max_ms"],
                   "serving_cpu_ms_per_request": round(serving_s / n * 1e3, 3),
                   "monitor_cpu_s": round(monitor_s, 3), "load_average": round(os.getloadavg()[0], 2)}
            rows.append(row)
            print(f"{name:>6} row {i:2d}: p50 {r['p50_ms']} p99 {r['p99_ms']} ms  serving cpu "
                  f"{row['serving_cpu_ms_per_request']} ms/req  monitor cpu {monitor_s:.2f} s  errors {r['errors']}",
                  flush=True)
        # the comparison running when the rows ended is the next to end: wait for it (its start says which rows it overlapped)
        end = time.time() + 600
        while ((c := last_comparison(home)) is None or c[2] < rows[-1]["t1"]) and time.time() < end:
            loadgen.run(url, paths, duration_s=2.0, rate=args.rate)
        if (c := last_comparison(home)) is not None:
            spans[c[0]] = c[1:]
        for row in rows:  # seconds of each row during which a comparison ran (anywhere in the server)
            overlap = [min(row["t1"], b) - max(row["t0"], a) for a, b in spans.values()]
            row["comparison_s"] = round(sum(o for o in overlap if o > 0), 2)
            row["comparisons"] = sum(o > 0 for o in overlap)
        with httpx.Client(base_url=url, timeout=60) as c:
            last = c.get("/v1/admin/drift").json()
        rows.append({"variant": name, "last_report": {k: last.get(k) for k in ("state", "computations",
                                                                                "computed_by", "error")},
                     "live_events": ((last.get("report") or {}).get("live") or {}).get("events"),
                     "comparison_spans_s": sorted(round(b - a, 2) for a, b in spans.values())})
    return rows


def _stats(sel: list[dict]) -> dict:
    return {"rows": len(sel),
            "serving_cpu_ms_per_request": round(statistics.median(r["serving_cpu_ms_per_request"] for r in sel), 3),
            "p99_ms_median": round(statistics.median(r["p99_ms"] for r in sel), 2),
            "p99_ms_max": max(r["p99_ms"] for r in sel),
            "monitor_cpu_s_median": round(statistics.median(r["monitor_cpu_s"] for r in sel), 3),
            "errors": sum(r["errors"] for r in sel),
            "load_average": [min(r["load_average"] for r in sel), max(r["load_average"] for r in sel)]}


def summarise(rows: list[dict]) -> dict:
    """Per variant, and per segment (one server run: its rows share the machine's minutes), the
    rows that overlapped a comparison ("with_comparison") vs the others ("without")."""
    out: dict = {"variants": {}, "segments": []}
    measured = [r for r in rows if "row" in r]
    segments: list[list[dict]] = []
    for r in measured:
        if r["row"] == 0:
            segments.append([])
        segments[-1].append(r)
    for name in sorted({r["variant"] for r in measured}):
        mine = [r for r in measured if r["variant"] == name]
        out["variants"][name] = {label: _stats(sel) for label, sel in (
            ("with_comparison", [r for r in mine if r["comparisons"] > 0]),
            ("without", [r for r in mine if r["comparisons"] == 0])) if sel}
    for i, seg in enumerate(segments):
        parts = {label: _stats(sel) for label, sel in (
            ("with_comparison", [r for r in seg if r["comparisons"] > 0]),
            ("without", [r for r in seg if r["comparisons"] == 0])) if sel}
        out["segments"].append({"segment": i, "variant": seg[0]["variant"], **parts})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    serve.world_args(ap)
    ap.add_argument("--before-src", required=True, help="the source tree of the code before the change")
    ap.add_argument("--rate", type=float, default=150.0)
    ap.add_argument("--duration", type=float, default=5.0)
    ap.add_argument("--rows", type=int, default=16)
    ap.add_argument("--warmup", type=float, default=10.0)
    ap.add_argument("--refresh", type=float, default=20.0)
    ap.add_argument("--window-days", type=float, default=12_000.0)
    ap.add_argument("--order", default="before,after")
    ap.add_argument("--json", required=True)
    args = ap.parse_args()
    home = Path(args.home or f"/tmp/winnow-bench-drift-{os.getpid()}")
    src = Path(args.src).resolve()
    t0 = time.time()
    built = serve.build(home, src, args)
    users = serve.load_users(home, src, args.active_users)
    paths = [f"/v1/users/{u}/recommendations?k=20" for u in users]
    trees = {"before": Path(args.before_src).resolve(), "after": src}
    rows: list[dict] = []
    for name in args.order.split(","):
        rows += variant(name, trees[name], home, paths, args)
    summary = summarise(rows)
    out = {"benchmark": "drift_offpath", "world": ({"movielens": args.movielens} if args.movielens else
                                                   {"items": args.items, "users": args.users, "events": args.events}),
           "home": str(home), "build": built, "workers": args.workers, "rate": args.rate,
           "duration_s": args.duration, "refresh_s": args.refresh, "window_days": args.window_days,
           "trees": {k: str(v) for k, v in trees.items()}, "summary": summary, "rows": rows,
           "total_s": round(time.time() - t0, 1)}
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(out, indent=2), encoding="utf-8")
    print("| segment | variant | comparison in row | rows | serving CPU ms/req | p99 ms (median / max) | "
          "monitor CPU s/row | load average |")
    print("|---|---|---|---|---|---|---|---|")
    for seg in summary["segments"]:
        for label in ("with_comparison", "without"):
            if label in seg:
                s = seg[label]
                print(f"| {seg['segment']} | {seg['variant']} | {'yes' if label == 'with_comparison' else 'no'} | "
                      f"{s['rows']} | {s['serving_cpu_ms_per_request']} | {s['p99_ms_median']} / {s['p99_ms_max']} | "
                      f"{s['monitor_cpu_s_median']} | {s['load_average'][0]}-{s['load_average'][1]} |")

if __name__ == "__main__":
    main()
