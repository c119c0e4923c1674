"""Serving benchmark of the default product: every row of the issue-21 table in one run.

Builds (or reuses) a home: ``--movielens DIR`` imports a MovieLens directory, otherwise a
synthetic world of ``--users/--items/--events``; then ``train`` with the packaged defaults (no
config overrides: the learned LightGBM ranker the default bundle serves). Starts
``winnow serve`` with ``--workers`` processes (the connection dispatcher, serving/workers.py)
from ``--src`` (default: this tree; point it at an older checkout for a "before" run), warms
every load user's online state once, and measures with bench/loadgen.py (the client runs in
this process; its CPU share is in every row):

- closed loop at ``--conns`` connections (wrk's model);
- open loop at ``--rates`` requests/s, latency from each request's scheduled time;
- the same open loop against /healthz at ``--floor-rate`` (what the HTTP stack alone costs);
- the first open-loop rate again at the end (``aged``): the server has then answered every
  request of the run, each logged as an impression.

Each row records the per-worker request counts (x-winnow-worker), the server's CPU per request
and the load average. With ``--baseline-src`` a second server (another source tree, its own
home built from the same data) runs beside it and every row is measured on both, alternating,
so a before/after pair shares the machine's load. The in-app time (``bench/inapp.py``:
Service.recommend in one process, wall and CPU time, stage timings) runs last, for each tree.

    python bench/serve.py --movielens /work/shared/data/ml-latest-small --baseline-src /tmp/old/src \
        --json bench/results/serve_mls.json
    python bench/serve.py --items 1000000 --users 100000 --events 2000000 --json bench/results/serve_1m.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
import loadgen  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
ENV = {"OPENBLAS_NUM_THREADS": "1", "WINNOW__SECURITY__AUTH": "false"}  # the funnel, not key checks


def _run_py(src: Path, code: list[str], home: Path, **env: str) -> str:
    """Run ``python <code>`` with ``src`` on PYTHONPATH and WINNOW_HOME; returns stdout."""
    full = {**os.environ, **ENV, "PYTHONPATH": str(src), "WINNOW_HOME": str(home), **env}
    return subprocess.run([sys.executable, *code], env=full, check=True, capture_output=True, text=True).stdout


def build(home: Path, src: Path, args: argparse.Namespace) -> dict:
    """Import + train with defaults unless ``home`` already has an active bundle."""
    if (home / "bundles" / "ACTIVE").exists():
        return {"reused": True}
    home.mkdir(parents=True, exist_ok=True)
    cli = ["-c", "from winnow.cli import main; main()", "--home", str(home)]
    t0 = time.time()
    if args.movielens:
        _run_py(src, [*cli, "import", "movielens", args.movielens], home)
    else:
        _run_py(src, [*cli, "import", "synthetic", "--users", str(args.users), "--items", str(args.items),
                      "--events", str(args.events)], home)
    t1 = time.time()
    _run_py(src, [*cli, "train"], home)
    return {"import_s": round(t1 - t0, 1), "train_s": round(time.time() - t1, 1)}


def world_of(home: Path, given: dict) -> dict:
    """The world the served bundle was trained on (its manifest's ``data``: events, items, users
    and time span), beside what the options asked for (``given``): a reused home may hold another
    world than the options describe."""
    try:
        active = (home / "bundles" / "ACTIVE").read_text().strip()
        data = json.loads((home / "bundles" / active / "manifest.json").read_text())["data"]
    except (OSError, KeyError, ValueError) as exc:
        return {"options": given, "bundle": None, "bundle_error": str(exc)}
    return {"options": given, "bundle": {"version": active, **data}}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(home: Path, src: Path, port: int, workers: int) -> subprocess.Popen:
    env = {**os.environ, **ENV, "PYTHONPATH": str(src), "WINNOW_HOME": str(home),
           "WINNOW__SERVING__WORKERS": str(workers)}
    log = open(home / "bench-server.log", "ab")
    proc = subprocess.Popen([sys.executable, "-c", "from winnow.cli import main; main()", "--home", str(home),
                             "serve", "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + 900
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server died: {(home / 'bench-server.log').read_text()[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError("server not ready in 900 s")


def load_users(home: Path, src: Path, k: int) -> list[str]:
    out = _run_py(src, ["-c", "import sys\nfrom winnow.core.config import load_config\n"
                        "from winnow.data.open_store import open_store\n"
                        "s = open_store(load_config(sys.argv[1]).store_url())\n"
                        "print('\\n'.join(map(str, s.read_users()['user_id'][:int(sys.argv[2])])))",
                        str(home), str(k)], home)
    return out.split()


def tree_cpu_s(pid: int) -> dict[int, float]:
    """User + system CPU seconds of process ``pid`` and each of its descendants (Linux /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    parent: dict[int, int] = {}
    cpu: dict[int, float] = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            f = (d / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parent[int(d.name)] = int(f[1])
        cpu[int(d.name)] = (int(f[11]) + int(f[12])) / tick
    tree, frontier = {pid}, [pid]
    while frontier:
        p = frontier.pop()
        kids = [c for c, pp in parent.items() if pp == p and c not in tree]
        tree.update(kids)
        frontier += kids
    return {p: cpu[p] for p in tree if p in cpu}


def server_cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` and all its descendants (Linux /proc)."""
    return sum(tree_cpu_s(pid).values())


def process_role(pid: int) -> str:
    """"worker", "shadow" (the shadow process), "drift_monitor" or "other" (the dispatcher...),
    from the process's command line."""
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return "other"
    if b"winnow.serving.worker_proc" in cmd:
        return "shadow" if b"shadow" in cmd else "worker"
    return "drift_monitor" if b"drift" in cmd and b"monitor" in cmd else "other"


def row(name: str, url: str, paths: list[str], duration: float, server: int, **kw: float) -> dict:
    """One loadgen run, with the server's CPU over it (every descendant: dispatcher, workers, the
    shadow process and the drift monitor child; also per role, ``cpu_ms_per_request_by_role``)
    and the load average."""
    before = tree_cpu_s(server)
    r = loadgen.run(url, paths, duration_s=duration, **kw).summary()
    after = tree_cpu_s(server)
    by_role: dict[str, float] = {}
    for pid, cpu in after.items():
        role = process_role(pid)
        by_role[role] = by_role.get(role, 0.0) + cpu - before.get(pid, 0.0)
    cpu = sum(by_role.values())
    n = max(r["requests"], 1)
    r.update({"row": name, "load_average": [round(x, 2) for x in os.getloadavg()],
              "server_cpu_share": round(cpu / duration, 3),
              "server_cpu_ms_per_request": round(cpu / n * 1e3, 3),
              "cpu_ms_per_request_by_role": {k: round(v / n * 1e3, 3) for k, v in sorted(by_role.items())}})
    print(f"{name:>22}: {r['achieved_rps']:>7.1f} req/s  p50 {r['p50_ms']} ms  p99 {r['p99_ms']} ms  "
          f"errors {r['errors']}  workers {list(r['per_worker'].values())}  server cpu "
          f"{r['server_cpu_ms_per_request']} ms/req {r['cpu_ms_per_request_by_role']}  "
          f"client cpu {r['client_cpu_share']:.1%}  load {r['load_average'][0]}", flush=True)
    return r


def wait_for_workers(url: str, workers: int, timeout_s: float = 60) -> None:
    """Until ``workers`` distinct processes answered (fresh connections go to the least-loaded
    ready worker, so readiness of one says nothing of the others)."""
    seen: set[str] = set()
    deadline = time.time() + timeout_s
    while len(seen) < workers and time.time() < deadline:
        with httpx.Client(base_url=url, timeout=60) as c:
            seen.add(c.get("/healthz").headers.get("x-winnow-worker", "?"))
        time.sleep(0.2)


@contextlib.contextmanager
def running_server(home: Path, src: Path, workers: int) -> Iterator[tuple[subprocess.Popen, str]]:
    """``winnow serve`` on ``home`` (``src`` on PYTHONPATH) on a free port, every worker
    answering: (process, url) for the block; terminated (and waited for) after it."""
    port = free_port()
    proc = start_server(home, src, port, workers)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_workers(url, workers)
        yield proc, url
    finally:
        proc.terminate()
        proc.wait(60)


def specs(args: argparse.Namespace, paths: list[str]) -> list[tuple[str, list[str], float, dict]]:
    """(row name, paths, seconds, loadgen keyword) for every measured row, in order."""
    rates = [float(x) for x in args.rates.split(",") if x]
    out = [(f"closed c={c}", paths, args.duration, {"conns": c}) for c in [int(x) for x in args.conns.split(",") if x]]
    out += [(f"open {r:g}/s", paths, args.duration, {"rate": r}) for r in rates]
    out.append((f"healthz open {args.floor_rate:g}/s", ["/healthz"], args.duration, {"rate": args.floor_rate}))
    if rates:
        out.append((f"aged open {max(rates):g}/s", paths, args.duration, {"rate": max(rates)}))
    return out


def world_args(ap: argparse.ArgumentParser) -> None:
    """The options naming the home, its world and the server's source tree (shared by the
    serving benchmarks: ``build`` reads them)."""
    ap.add_argument("--home", help="an existing home, or where to build one (default: a temp dir)")
    ap.add_argument("--movielens", help="import this MovieLens directory instead of a synthetic world")
    ap.add_argument("--items", type=int, default=20_000)
    ap.add_argument("--users", type=int, default=20_000)
    ap.add_argument("--events", type=int, default=400_000)
    ap.add_argument("--src", default=str(ROOT / "src"), help="the server's source tree (PYTHONPATH)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--active-users", type=int, default=5000)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    world_args(ap)
    ap.add_argument("--baseline-src", help="also serve this source tree (its own home, same data) and "
                    "measure every row on both, alternating, so each pair shares the machine's minute")
    ap.add_argument("--duration", type=float, default=20.0, help="seconds per row")
    ap.add_argument("--conns", default="1,2,4,8,32")
    ap.add_argument("--rates", default="100,200,300")
    ap.add_argument("--floor-rate", type=float, default=1000.0)
    ap.add_argument("--inapp-requests", type=int, default=2000)
    ap.add_argument("--json", required=True)
    args = ap.parse_args()
    home = Path(args.home or f"/tmp/winnow-bench-serve-{os.getpid()}")
    t0 = time.time()
    sides = [("this", Path(args.src).resolve(), home)]
    if args.baseline_src:
        sides.append(("baseline", Path(args.baseline_src).resolve(), home.with_name(home.name + "-baseline")))
    servers: dict[str, dict] = {}
    try:
        for label, src, h in sides:
            built = build(h, src, args)
            users = load_users(h, src, args.active_users)
            port = free_port()
            t1 = time.time()
            proc = start_server(h, src, port, args.workers)
            url = f"http://127.0.0.1:{port}"
            servers[label] = {"src": str(src), "home": str(h), "build": built, "proc": proc, "url": url,
                              "startup_s": round(time.time() - t1, 1), "rows": [],
                              "paths": [f"/v1/users/{u}/recommendations?k=20" for u in users]}
            wait_for_workers(url, args.workers)
        for label, sv in servers.items():
            with httpx.Client(base_url=sv["url"], timeout=60) as c:
                sv["model_version"] = c.get("/readyz").json().get("model_version")
            # every load user's first request (online state from the store), spread over the workers
            print(f"[{label}]", flush=True)
            sv["rows"].append(row("warm-up closed c=4", sv["url"], sv["paths"], max(5.0, len(sv["paths"]) / 100),
                                  sv["proc"].pid, conns=4))
        labels = list(servers)
        for i, (name, _, secs, kw) in enumerate(specs(args, ["/healthz"])):
            for label in (labels if i % 2 == 0 else labels[::-1]):  # alternate who goes first
                sv = servers[label]
                paths = ["/healthz"] if name.startswith("healthz") else sv["paths"]
                sv["rows"].append(row(f"{name} [{label}]" if len(labels) > 1 else name, sv["url"], paths,
                                      secs, sv["proc"].pid, **kw))
                sv["rows"][-1]["row"] = name
    finally:
        for sv in servers.values():
            sv["proc"].terminate()
            sv["proc"].wait(60)
    out = {"benchmark": "serve", "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                                             "platform": platform.platform()},
           "world": world_of(sides[0][2], {"movielens": args.movielens} if args.movielens else
                             {"items": args.items, "users": args.users, "events": args.events}),
           "workers": args.workers, "duration_s_per_row": args.duration,
           "goal": "open loop 300 req/s p99 <= 30 ms, 0 errors; in-app p50 <= 2 ms, p99 <= 6 ms"}
    for label, src, h in sides:
        sv = servers[label]
        inapp = json.loads(_run_py(src, [str(ROOT / "bench" / "inapp.py"), "--home", str(h),
                                         "--requests", str(args.inapp_requests)], h))
        part = {"src": sv["src"], "home": sv["home"], "build": sv["build"], "server_startup_s": sv["startup_s"],
                "model_version": sv.get("model_version"), "load_users": len(sv["paths"]), "rows": sv["rows"],
                "inapp": inapp}
        if label == "this":
            out.update(part)
        else:
            out["baseline"] = part
        rec = inapp["recommend"]
        print(f"[{label}] in-app (Service.recommend, {inapp['ranker']}, {inapp['candidates_mean']:.0f} candidates): "
              f"cpu {inapp.get('recommend_cpu')}, wall p50 {rec['p50_ms']} ms p99 {rec['p99_ms']} ms; "
              f"stages {inapp['stages']}", flush=True)
    out["total_s"] = round(time.time() - t0, 1)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(out, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
