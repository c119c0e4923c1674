"""Where a server's CPU goes, per process: the dispatcher, each worker and the drift monitor.

``bench/serve.py`` reports the server's CPU per request as one figure (the ``winnow serve``
process and all its descendants); this splits it by process, for one or two source trees on
copies of the same home, so a figure that differs between two homes (or two trees) says which
process spent the difference. For each ``--src`` in turn: the home is copied (bench/homes.py),
``winnow serve`` starts with ``--workers`` workers, then ``--idle`` seconds with no request and
``--rows`` closed-loop rows of ``--duration`` s at ``--conns`` connections (bench/loadgen.py,
users drawn from the home), each with every process's CPU seconds over it (Linux /proc), and at
the end the drift monitor's shared result (``<home>/drift/live.json``: its last comparison's
CPU seconds and user sample). The copies are removed afterwards.

    python bench/serve_cpu_split.py --home /tmp/ro3-home --src /tmp/before/src --src src \
        --json bench/results/oldhome_cpu_split.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

import loadgen
import serve
from homes import copy_home


def role(pid: int) -> str:
    """"dispatcher", "worker", "drift_monitor" or "other", from the process's command line."""
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return "other"
    if "winnow.serving.workers" in cmd:
        return "worker"
    if "drift monitor" in cmd:
        return "drift_monitor"
    return "dispatcher" if " serve " in cmd else "other"


def by_role(before: dict[int, float], after: dict[int, float], roles: dict[int, str]) -> dict[str, float]:
    """CPU seconds spent between two ``serve.tree_cpu_s`` snapshots, summed per role."""
    out: dict[str, float] = {}
    for pid, cpu in after.items():
        name = roles.setdefault(pid, role(pid))
        out[name] = round(out.get(name, 0.0) + cpu - before.get(pid, 0.0), 3)
    return out


def monitor_result(home: Path) -> dict | None:
    """The drift monitor's last shared result, without its report and history (None: none yet)."""
    try:
        doc = json.loads((home / "drift" / "live.json").read_text())
    except (OSError, ValueError):
        return None
    live = (doc.get("report") or {}).get("live") or {}
    return {"computations": doc.get("computations"), "computed_by": doc.get("computed_by"),
            "compute_s": doc.get("compute_s"), "compute_cpu_s": doc.get("compute_cpu_s"),
            "interval_s": doc.get("interval_s"), "live_events": live.get("events"),
            "served_items": live.get("served_items")}


def measure(src: Path, home: Path, args: argparse.Namespace) -> dict:
    """One tree on its own copy of the home: idle and loaded CPU split by process."""
    users = serve.load_users(home, src, args.active_users)
    paths = [f"/v1/users/{u}/recommendations?k=20" for u in users]
    roles: dict[int, str] = {}
    with serve.running_server(home, src, args.workers) as (proc, url):
        started_monitor_pid = [p for p in serve.tree_cpu_s(proc.pid) if role(p) == "drift_monitor"]
        s0 = serve.tree_cpu_s(proc.pid)
        time.sleep(args.idle)
        idle = by_role(s0, serve.tree_cpu_s(proc.pid), roles)
        print(f"  idle {args.idle:g} s: cpu s {idle}", flush=True)
        rows = []
        for i in range(args.rows):
            s1 = serve.tree_cpu_s(proc.pid)
            r = loadgen.run(url, paths, conns=args.conns, duration_s=args.duration).summary()
            cpu = by_role(s1, serve.tree_cpu_s(proc.pid), roles)
            n = max(r["requests"], 1)
            rows.append({"row": i, "achieved_rps": r["achieved_rps"], "requests": r["requests"],
                         "errors": r["errors"], "p50_ms": r["p50_ms"], "p99_ms": r["p99_ms"],
                         "client_cpu_share": r["client_cpu_share"], "cpu_s": cpu,
                         "server_cpu_ms_per_request": round(sum(cpu.values()) / n * 1e3, 3),
                         "workers_cpu_ms_per_request": round(cpu.get("worker", 0.0) / n * 1e3, 3),
                         "monitor_cpu_ms_per_request": round(cpu.get("drift_monitor", 0.0) / n * 1e3, 3),
                         "load_average": [round(x, 2) for x in os.getloadavg()]})
            print(f"  closed c={args.conns} row {i}: {r['achieved_rps']} req/s, server "
                  f"{rows[-1]['server_cpu_ms_per_request']} ms/req (workers "
                  f"{rows[-1]['workers_cpu_ms_per_request']}, monitor {rows[-1]['monitor_cpu_ms_per_request']}), "
                  f"errors {r['errors']}, load {rows[-1]['load_average'][0]}", flush=True)
    return {"src": str(src), "idle_s": args.idle, "idle_cpu_s": idle, "rows": rows,
            "monitor_pids": started_monitor_pid, "drift_monitor_result": monitor_result(home)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--home", required=True, help="a trained home (copied once per tree, never written)")
    ap.add_argument("--src", action="append", required=True, help="a source tree (one or two)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--active-users", type=int, default=5000)
    ap.add_argument("--idle", type=float, default=30.0, help="seconds with no request, first")
    ap.add_argument("--rows", type=int, default=3)
    ap.add_argument("--duration", type=float, default=20.0, help="seconds per closed-loop row")
    ap.add_argument("--conns", type=int, default=32)
    ap.add_argument("--json", required=True)
    args = ap.parse_args()
    if len(args.src) > 2:
        ap.error("give one or two --src trees")
    trees = []
    for i, src in enumerate(Path(s).resolve() for s in args.src):
        home = Path(f"{args.home.rstrip('/')}-split{i}")
        if home.exists():
            shutil.rmtree(home)
        copy_home(args.home, home)
        print(f"[{src}] on {home}", flush=True)
        try:
            trees.append(measure(src, home, args))
        finally:
            shutil.rmtree(home, ignore_errors=True)
    out = {"benchmark": "serve_cpu_split", "home": args.home, "workers": args.workers, "conns": args.conns,
           "duration_s_per_row": args.duration, "trees": trees,
           "note": "CPU seconds per process role over each phase (Linux /proc); ms per request = the "
                   "role's CPU over the row / requests answered in it"}
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(out, indent=2), encoding="utf-8")
    print("| tree | idle CPU s (monitor) | server ms/req | workers ms/req | monitor ms/req | req/s |")
    print("|---|---|---|---|---|---|")
    for t in trees:
        med = sorted(t["rows"], key=lambda r: r["server_cpu_ms_per_request"])[len(t["rows"]) // 2]
        print(f"| {t['src']} | {t['idle_cpu_s'].get('drift_monitor', 0.0)} | {med['server_cpu_ms_per_request']} | "
              f"{med['workers_cpu_ms_per_request']} | {med['monitor_cpu_ms_per_request']} | {med['achieved_rps']} |")


if __name__ == "__main__":
    main()
