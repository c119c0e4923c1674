"""Serving benchmark: latency and throughput of GET /v1/users/{id}/recommendations.

Builds (once, reused with --reuse) a synthetic world in --home, trains a bundle, starts the real
server in a separate process (uvicorn, one worker) and drives it with wrk (or an async httpx
client when wrk is missing) at each concurrency for --duration seconds, k=20, with source quotas
summing to 500 candidates. Per-stage time comes from the server's Prometheus histograms
(winnow_stage_seconds) over the run. Writes JSON (--json) and prints a table.

    OPENBLAS_NUM_THREADS=1 python bench/serve.py --items 1000000 --json bench/results/serve.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import httpx  # noqa: E402
import numpy as np  # noqa: E402

TOML = """
[pipeline]
min_candidates = 200
max_candidates = 1000
[[pipeline.sources]]
name = "als"
kind = "als"
quota = 300
weight = 1.0
[[pipeline.sources]]
name = "itemitem"
kind = "itemitem"
quota = 150
weight = 0.8
[[pipeline.sources]]
name = "trending"
kind = "trending"
quota = 30
weight = 0.3
[[pipeline.sources]]
name = "fresh"
kind = "fresh"
quota = 20
weight = 0.2
"""

WRK_LUA = r"""
math.randomseed(42)
local n = tonumber(os.getenv("BENCH_USERS"))
request = function()
  return wrk.format("GET", "/v1/users/u" .. math.random(0, n - 1) .. "/recommendations?k=20")
end
done = function(summary, latency, requests)
  io.write(string.format("JSON{\"requests\":%d,\"errors\":%d,\"duration_us\":%d,\"p50\":%d,\"p95\":%d,\"p99\":%d,\"mean\":%f}\n",
    summary.requests, summary.errors.status + summary.errors.connect + summary.errors.read +
    summary.errors.write + summary.errors.timeout, summary.duration,
    latency:percentile(50), latency:percentile(95), latency:percentile(99), latency.mean))
end
"""


def setup(home: Path, n_users: int, n_items: int, n_events: int) -> dict:
    from winnow.core.config import load_config
    from winnow.data.open_store import open_store
    from winnow.data.synthetic import generate_world
    from winnow.training.bundle import active_version
    from winnow.training.job import train

    home.mkdir(parents=True, exist_ok=True)
    (home / "winnow.toml").write_text(TOML, encoding="utf-8")
    if active_version(home) is not None:
        return {"reused": True}
    cfg = load_config(home)
    t0 = time.time()
    world = generate_world(n_users, n_items, n_events, seed=1)
    t1 = time.time()
    store = open_store(cfg.store_url())
    store.import_all(events=world.events, items=world.items, users=world.users)
    t2 = time.time()
    info = train(cfg, store, evaluate_models=False)
    t3 = time.time()
    store.close()
    return {"generate_s": round(t1 - t0, 1), "import_s": round(t2 - t1, 1), "train_s": round(t3 - t2, 1),
            "train_timings_s": info.manifest.get("timings_s"), "index": info.manifest.get("index")}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(home: Path, port: int, workers: int) -> subprocess.Popen:
    env = {**os.environ, "WINNOW_HOME": str(home), "OPENBLAS_NUM_THREADS": "1",
           "WINNOW__SECURITY__AUTH": "false",  # measures the funnel, not key checks
           "WINNOW__SERVING__WORKERS": str(workers)}
    log = open(home / "bench-server.log", "wb")
    cmd = [sys.executable, "-m", "uvicorn", "--factory", "winnow.serving.server:app_from_env",
           "--host", "127.0.0.1", "--port", str(port), "--loop", "uvloop", "--http", "httptools",
           "--log-level", "warning", "--no-access-log", "--workers", str(workers)]
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    t0 = time.time()
    while time.time() - t0 < 600:
        if proc.poll() is not None:
            raise RuntimeError(f"server died: {(home / 'bench-server.log').read_text()[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError("server not ready in 600 s")


def stage_sums(url: str) -> dict[str, tuple[float, float]]:
    text = httpx.get(url + "/metrics").text
    out: dict[str, list[float]] = {}
    for m in re.finditer(r'winnow_stage_seconds_(sum|count)\{stage="(\w+)"\} ([0-9.e+-]+)', text):
        out.setdefault(m.group(2), [0.0, 0.0])["sum count".split().index(m.group(1))] = float(m.group(3))
    route = r'winnow_request_seconds_(sum|count)\{route="/v1/users/\{user_id\}/recommendations"\} ([0-9.e+-]+)'
    for m in re.finditer(route, text):  # whole request inside the app (routing, pydantic, JSON)
        out.setdefault("http_in_app", [0.0, 0.0])["sum count".split().index(m.group(1))] = float(m.group(2))
    return {k: (v[0], v[1]) for k, v in out.items()}


def run_wrk(url: str, conc: int, duration: int, n_users: int) -> dict:
    lua = Path(tempfile.mkstemp(suffix=".lua")[1])
    lua.write_text(WRK_LUA)
    threads = max(1, min(conc, 2))
    out = subprocess.run(["wrk", "-t", str(threads), "-c", str(conc), "-d", f"{duration}s", "-s", str(lua),
                          "--timeout", "5s", url], capture_output=True, text=True,
                         env={**os.environ, "BENCH_USERS": str(n_users)}, check=True).stdout
    data = json.loads(out.split("JSON", 1)[1].strip().splitlines()[0])
    secs = data["duration_us"] / 1e6
    return {"tool": "wrk", "requests": data["requests"], "errors": data["errors"],
            "rps": data["requests"] / secs, "p50_ms": data["p50"] / 1e3, "p95_ms": data["p95"] / 1e3,
            "p99_ms": data["p99"] / 1e3, "mean_ms": data["mean"] / 1e3}


async def _httpx_load(url: str, conc: int, duration: int, n_users: int) -> dict:
    rng = np.random.default_rng(42)
    lat: list[float] = []
    errors = 0
    end = time.perf_counter() + duration

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal errors
        while time.perf_counter() < end:
            t = time.perf_counter()
            r = await client.get(f"/v1/users/u{int(rng.integers(n_users))}/recommendations", params={"k": 20})
            lat.append(time.perf_counter() - t)
            errors += r.status_code != 200

    t0 = time.perf_counter()
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        await asyncio.gather(*(worker(client) for _ in range(conc)))
    secs = time.perf_counter() - t0
    a = np.array(lat) * 1e3
    return {"tool": "httpx", "requests": len(a), "errors": errors, "rps": len(a) / secs,
            "p50_ms": float(np.percentile(a, 50)), "p95_ms": float(np.percentile(a, 95)),
            "p99_ms": float(np.percentile(a, 99)), "mean_ms": float(a.mean())}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--home", default="/tmp/winnow-bench-serve")
    ap.add_argument("--items", type=int, default=1_000_000)
    ap.add_argument("--users", type=int, default=100_000)
    ap.add_argument("--events", type=int, default=2_000_000)
    ap.add_argument("--duration", type=int, default=15)
    ap.add_argument("--concurrency", default="1,8,32")
    ap.add_argument("--json", default="bench/results/serve.json")
    ap.add_argument("--fresh", action="store_true", help="rebuild the world and bundle")
    ap.add_argument("--setup-only", action="store_true", help="build world + bundle, then stop")
    ap.add_argument("--workers", type=int, default=1, help="uvicorn worker processes ([serving] workers)")
    ap.add_argument("--active-users", type=int, default=2000,
                    help="load is drawn from this many users, whose online state is warmed first")
    args = ap.parse_args()
    home = Path(args.home)
    if args.fresh and home.exists():
        shutil.rmtree(home)
    t0 = time.time()
    load0 = os.getloadavg()
    build = setup(home, args.users, args.items, args.events)
    if args.setup_only:
        print(json.dumps(build))
        return
    port = free_port()
    t1 = time.time()
    proc = start_server(home, port, args.workers)
    startup_s = time.time() - t1
    url = f"http://127.0.0.1:{port}"
    results = []
    try:
        ready = httpx.get(url + "/readyz").json()
        pool = min(args.active_users, args.users)
        with httpx.Client(base_url=url, timeout=30) as c:
            cold = []
            for i in range(pool):  # warm-up: each active user's online state is loaded once
                t = time.perf_counter()
                c.get(f"/v1/users/u{i}/recommendations", params={"k": 20})
                cold.append(time.perf_counter() - t)
        cold_ms = np.array(cold) * 1e3
        cold_stats = {"users": pool, "p50_ms": float(np.percentile(cold_ms, 50)),
                      "p99_ms": float(np.percentile(cold_ms, 99)), "mean_ms": float(cold_ms.mean())}
        print(f"first request per user (state load from the store): {cold_stats}", flush=True)
        one = httpx.get(f"{url}/v1/users/u1/recommendations", params={"k": 20, "explain": "true"}).json()
        for conc in [int(c) for c in args.concurrency.split(",")]:
            before = stage_sums(url)
            if shutil.which("wrk"):
                res = run_wrk(url, conc, args.duration, pool)
            else:
                res = asyncio.run(_httpx_load(url, conc, args.duration, pool))
            after = stage_sums(url)
            stages = {}
            for st, (s1, c1) in after.items():
                s0, c0 = before.get(st, (0.0, 0.0))
                if c1 > c0:
                    stages[st] = round((s1 - s0) / (c1 - c0) * 1e3, 3)
            if args.workers > 1:  # /metrics is per process: deltas between two workers mean nothing
                stages = {"note": "per-stage times are measured with --workers 1 (/metrics is per worker)"}
            res.update({"concurrency": conc, "k": 20, "stage_mean_ms": stages})
            results.append(res)
            print(f"c={conc}: {res}", flush=True)
    finally:
        proc.terminate()
        proc.wait(30)
    out = {
        "benchmark": "serve", "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                                          "platform": platform.platform()},
        "world": {"items": args.items, "users": args.users, "events": args.events}, "build": build,
        "server_startup_s": round(startup_s, 1), "workers": args.workers,
        "load_average_at_start": load0, "model_version": ready.get("model_version"),
        "candidates_quota": 500, "sample_sources": sorted({s for it in one["items"] for s in it["sources"]}),
        "active_users": pool, "first_request_per_user": cold_stats,
        "results": results, "total_s": round(time.time() - t0, 1),
        "goal": "p99 <= 30 ms at >= 300 req/s",
    }
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(out, indent=2), encoding="utf-8")
    print(f"\nworld: {args.items:,} items, {args.users:,} users, {args.events:,} events; "
          f"server start {startup_s:.1f}s")
    print(f"{'conc':>5} {'req/s':>8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'errors':>7}  stages (mean ms)")
    for r in results:
        print(f"{r['concurrency']:>5} {r['rps']:>8.0f} {r['p50_ms']:>8.2f} {r['p95_ms']:>8.2f} {r['p99_ms']:>8.2f} "
              f"{r['errors']:>7}  {r['stage_mean_ms']}")


if __name__ == "__main__":
    main()
