"""Soak test: minutes of steady mixed load on a real server, with bundle hot swaps.

Builds a synthetic home (two trained bundles, API keys ON), starts ``uvicorn`` in its own
process and drives it from THIS process (asyncio + httpx, open loop: requests are sent on a
fixed schedule whatever the latency, so a slow server cannot slow the load down) with a mix
of recommendations (GET), events (POST, 1-5 per request) and item upserts (POST, updates of
existing items). Every ``--swap-every`` seconds an admin call swaps the serving bundle,
alternately activating the other bundle and rolling back (POST .../rollback). The server's
resident memory (VmRSS of its pid) is sampled every second.

Verdict (exit code 1 if any fails): zero failed requests (non-2xx or transport error), p99
latency within ``--p99-ms``, RSS growth after warm-up within ``--rss-growth-mb`` (median of
the last fifth minus median of the first fifth of the post-warm-up samples).
Writes JSON (--json: summary + RSS curve) and a PNG of the curve (--png, matplotlib).

    OPENBLAS_NUM_THREADS=1 python bench/soak.py --duration 600 --json bench/results/soak.json \\
        --png bench/results/soak.png      # `make soak`
    python bench/soak.py --duration 20 --rate 40 --json /tmp/soak.json   # the CI version
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from soak_timeline import attribute_slow, plot, timeline  # noqa: E402 - bench/ is not a package

MIX = (("recommend", 0.70), ("events", 0.25), ("items", 0.05))


def build_home(home: Path, *, users: int, items: int, events: int,
               distinct: bool = False) -> tuple[list[str], dict[str, str]]:
    """Synthetic world + two bundles + keys; returns ([v1, v2], {"rw": token, "admin": token}).

    The two bundles are trained on the same data, so their ranker feature inputs (spec, feature
    catalog, id maps) are identical and a swap takes the serving feature state over. With
    ``distinct``, one more item is added to the catalog before the second training: the id maps
    differ, so a swap to the second bundle remaps the serving feature state (it only adds an
    item) and a swap back to the first replays the store's event log (it drops that item)."""
    from winnow.core.config import load_config
    from winnow.data.open_store import open_store
    from winnow.data.synthetic import generate_world
    from winnow.serving.auth import KeyFile, keys_path
    from winnow.training.job import train

    cfg = load_config(home)
    world = generate_world(users, items, events, seed=11)
    store = open_store(cfg.store_url())
    try:
        store.import_all(events=world.events, items=world.items, users=world.users)
        versions = [train(cfg, store, evaluate_models=False).version]
        if distinct:
            extra = world.items.iloc[:1].copy()
            extra["item_id"] = "i-soak-extra"
            store.upsert_items(extra)
        versions.append(train(cfg, store, evaluate_models=False).version)
    finally:
        store.close()
    kf = KeyFile(keys_path(cfg))
    return versions, {"rw": kf.create(["read", "write"], name="soak")[1],
                      "admin": kf.create(["admin"], name="soak-admin")[1]}


def start_server(home: Path, *, workers: int) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "WINNOW_HOME": str(home), "OPENBLAS_NUM_THREADS": "1",
           "WINNOW__SERVING__WORKERS": str(workers), "WINNOW__SECURITY__AUTH": "true"}
    cmd = [sys.executable, "-m", "uvicorn", "--factory", "winnow.serving.server:app_from_env", "--host",
           "127.0.0.1", "--port", str(port), "--loop", "uvloop", "--http", "httptools", "--log-level", "warning",
           "--no-access-log", "--workers", str(workers)]
    log = open(home / "server.log", "wb")  # noqa: SIM115 - open for the server's lifetime
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    end = time.monotonic() + 120
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise SystemExit(f"server exited: {(home / 'server.log').read_text()[-2000:]}")
        try:
            if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit("server not ready after 120 s")


def rss_mb(pids: list[int]) -> float:
    """Resident memory of the server processes (VmRSS from /proc, MiB)."""
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except FileNotFoundError:
            pass
    return total / 1024


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds consumed so far by ``pids`` (from /proc/PID/stat)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime (fields 14, 15)
        except (FileNotFoundError, IndexError, ValueError):
            pass
    return total


def server_pids(proc: subprocess.Popen) -> list[int]:
    """The uvicorn process and its workers (children), if any."""
    kids = Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
    extra = [int(p) for p in kids.read_text().split()] if kids.exists() else []
    return [proc.pid, *extra]


async def run_load(url: str, tokens: dict[str, str], versions: list[str], *, duration: float, rate: float,
                   swap_every: float, n_users: int, n_items: int, pids: list[int], seed: int,
                   concurrency: int) -> dict:
    """Request i is due at t0 + i / rate; ``concurrency`` senders take the next due request
    (bounded: an unbounded task pile-up makes httpx's pool, not the server, the bottleneck).
    Latency counts from the due time, so a late send (all senders busy) is charged to the
    server (no coordinated omission)."""
    rng = random.Random(seed)
    rw = {"Authorization": f"Bearer {tokens['rw']}"}
    admin = {"Authorization": f"Bearer {tokens['admin']}"}
    results: list[tuple[str, float, float, int | str, float]] = []  # kind, t, s from due, status, s from send
    swaps: list[tuple[float, str, int | str]] = []
    rss: list[tuple[float, float]] = []
    load: list[float] = []
    cpu: list[tuple[float, float, float]] = []  # t, server CPU s, this (client) process CPU s
    # keep-alive expiry below uvicorn's 5 s timeout: never reuse a connection the server is closing
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency, keepalive_expiry=2.0)
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as client:
        t0 = time.monotonic()

        async def one(kind: str, i: int, due: float) -> None:
            user = f"u{rng.randrange(n_users)}"
            start = time.monotonic()
            try:
                if kind == "recommend":
                    r = await client.get(f"/v1/users/{user}/recommendations", params={"k": 20}, headers=rw)
                elif kind == "events":
                    evs = [{"user_id": user, "item_id": f"i{rng.randrange(n_items)}",
                            "event_type": rng.choice(["view", "click", "purchase"]), "event_id": f"soak-{i}-{j}"}
                           for j in range(rng.randint(1, 5))]
                    r = await client.post("/v1/events", json={"events": evs}, headers=rw)
                else:
                    its = [{"item_id": f"i{rng.randrange(n_items)}", "title": f"updated {i}",
                            "categories": [f"c{rng.randrange(20)}"], "available": True} for _ in range(2)]
                    r = await client.post("/v1/items", json={"items": its}, headers=rw)
                status: int | str = r.status_code
            except httpx.HTTPError as exc:
                status = type(exc).__name__
            end = time.monotonic()
            results.append((kind, due - t0, end - due, status, end - start))

        async def swapper() -> None:
            k = 0
            while time.monotonic() - t0 < duration - swap_every / 2:
                await asyncio.sleep(swap_every)
                target = versions[0] if k % 2 == 0 else "rollback"  # v2 is active at the start
                ts = time.monotonic() - t0  # when the swap call started
                try:  # alternately: activate v1, roll back to v2
                    path = "/v1/admin/bundles/rollback" if k % 2 else f"/v1/admin/bundles/{target}/activate"
                    r = await client.post(path, headers=admin)
                    secs = r.json().get("load_seconds") if r.status_code == 200 else None
                    swaps.append((ts, target, r.status_code, secs))
                except httpx.HTTPError as exc:
                    swaps.append((ts, target, type(exc).__name__, None))
                k += 1

        async def sampler() -> None:
            while time.monotonic() - t0 < duration:
                rss.append((time.monotonic() - t0, rss_mb(pids)))
                load.append(os.getloadavg()[0])  # the machine is shared: record how busy it was
                me = os.times()
                cpu.append((time.monotonic() - t0, cpu_seconds(pids), me.user + me.system))
                await asyncio.sleep(1.0)

        tasks = [asyncio.create_task(sampler())]
        if swap_every > 0:
            tasks.append(asyncio.create_task(swapper()))
        n = int(duration * rate)
        plan = iter(enumerate(rng.choices([k for k, _ in MIX], [w for _, w in MIX], k=n)))

        async def sender() -> None:
            for i, kind in plan:  # one shared iterator: each request is sent once
                due = t0 + i / rate
                delay = due - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                await one(kind, i, due)

        await asyncio.gather(*(sender() for _ in range(concurrency)), *tasks)
        rss.append((time.monotonic() - t0, rss_mb(pids)))
    return {"results": results, "swaps": swaps, "rss": rss, "load": load, "cpu": cpu}


def summarise(raw: dict, *, warmup: float, p99_ms: float, rss_growth_mb: float) -> dict:
    res = raw["results"]
    lat = np.array([r[2] for r in res]) * 1000  # from the due time (includes waiting for a sender)
    sent = np.array([r[4] for r in res]) * 1000  # from the send
    failed = [r for r in res if not (isinstance(r[3], int) and 200 <= r[3] < 300)]
    by_kind = {}
    for kind, _ in MIX:
        x = np.array([r[2] for r in res if r[0] == kind]) * 1000
        if len(x):
            by_kind[kind] = {"n": len(x), "p50_ms": float(np.percentile(x, 50)),
                             "p99_ms": float(np.percentile(x, 99)), "max_ms": float(x.max())}
    curve = [(t, m) for t, m in raw["rss"] if t >= warmup]
    fifth = max(1, len(curve) // 5)
    first = float(np.median([m for _, m in curve[:fifth]])) if curve else float("nan")
    last = float(np.median([m for _, m in curve[-fifth:]])) if curve else float("nan")
    slope = float(np.polyfit([t for t, _ in curve], [m for _, m in curve], 1)[0] * 60) if len(curve) > 2 else 0.0
    swaps_failed = [s for s in raw["swaps"] if s[2] != 200]
    out = {
        "requests": len(res), "failed": len(failed),
        "failures": [{"kind": r[0], "t": round(r[1], 2), "status": r[3]} for r in failed[:20]],
        "p50_ms": float(np.percentile(lat, 50)), "p95_ms": float(np.percentile(lat, 95)),
        "p99_ms": float(np.percentile(lat, 99)), "max_ms": float(lat.max()),
        "p99_from_send_ms": float(np.percentile(sent, 99)), "by_kind": by_kind,
        "swaps": len(raw["swaps"]), "swaps_failed": len(swaps_failed),
        "swap_load_s_max": max((s[3] for s in raw["swaps"] if s[3] is not None), default=None),
        "swap_load_s_median": (float(np.median([s[3] for s in raw["swaps"] if s[3] is not None]))
                               if any(s[3] is not None for s in raw["swaps"]) else None),
        "loadavg_1min": ({"min": float(np.min(raw["load"])), "median": float(np.median(raw["load"])),
                          "max": float(np.max(raw["load"]))} if raw.get("load") else None),
        "rss_first_mb": first, "rss_last_mb": last, "rss_growth_mb": last - first,
        "rss_slope_mb_per_min": slope,
        "budgets": {"p99_ms": p99_ms, "rss_growth_mb": rss_growth_mb},
    }
    out["pass"] = bool(out["failed"] == 0 and out["swaps_failed"] == 0 and out["p99_ms"] <= p99_ms
                       and out["rss_growth_mb"] <= rss_growth_mb)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=float, default=600.0, help="seconds of load (default 600 = 10 min)")
    ap.add_argument("--rate", type=float, default=100.0, help="requests per second (open loop)")
    ap.add_argument("--swap-every", type=float, default=15.0, help="seconds between bundle swaps (0: none)")
    ap.add_argument("--warmup", type=float, default=None, help="seconds excluded from the RSS verdict "
                    "(default: a fifth of the duration)")
    ap.add_argument("--p99-ms", type=float, default=100.0)
    ap.add_argument("--rss-growth-mb", type=float, default=25.0)
    ap.add_argument("--users", type=int, default=2000)
    ap.add_argument("--items", type=int, default=1000)
    ap.add_argument("--events", type=int, default=60_000)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--distinct-bundles", action="store_true", help="train the second bundle on a catalog "
                    "with one more item: swaps to it remap the feature state, swaps back replay the event log (see build_home)")
    ap.add_argument("--concurrency", type=int, default=32, help="client senders (connections)")
    ap.add_argument("--home", type=Path, default=None, help="data directory (default: a temporary one)")
    ap.add_argument("--reuse-home", action="store_true", help="with --home: reuse the bundles and keys of an "
                    "earlier run there (its soak_meta.json) instead of building a new home")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--png", type=Path, default=None)
    args = ap.parse_args()
    warmup = args.duration / 5 if args.warmup is None else args.warmup
    tmp = None
    home = args.home
    if home is None:
        tmp = tempfile.TemporaryDirectory(prefix="winnow-soak-")
        home = Path(tmp.name)
    home.mkdir(parents=True, exist_ok=True)
    t = time.time()
    meta = home / "soak_meta.json"
    if args.reuse_home and meta.is_file():
        versions, tokens = (json.loads(meta.read_text())[k] for k in ("versions", "tokens"))
        print(f"home reused: bundles {versions}", flush=True)
    else:
        versions, tokens = build_home(home, users=args.users, items=args.items, events=args.events,
                                      distinct=args.distinct_bundles)
        meta.write_text(json.dumps({"versions": versions, "tokens": tokens}))
        meta.chmod(0o600)
        print(f"home built in {time.time() - t:.1f} s: bundles {versions}", flush=True)
    proc, url = start_server(home, workers=args.workers)
    try:
        time.sleep(0.5 if args.workers == 1 else 3)
        pids = server_pids(proc)
        raw = asyncio.run(run_load(url, tokens, versions, duration=args.duration, rate=args.rate,
                                   swap_every=args.swap_every, n_users=args.users, n_items=args.items,
                                   pids=pids, seed=0, concurrency=args.concurrency))
        alive = proc.poll() is None
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
    summary = summarise(raw, warmup=warmup, p99_ms=args.p99_ms, rss_growth_mb=args.rss_growth_mb)
    summary["server_alive_at_end"] = alive
    summary["pass"] = summary["pass"] and alive
    rows = timeline(raw)
    slow = attribute_slow(raw, slow_ms=args.p99_ms)
    out = {"bench": "soak", "duration_s": args.duration, "rate_rps": args.rate, "mix": dict(MIX),
           "swap_every_s": args.swap_every, "warmup_s": warmup, "workers": args.workers,
           "distinct_bundles": args.distinct_bundles,
           "world": {"users": args.users, "items": args.items, "events": args.events},
           "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
           **summary, "slow_requests": slow, "rss_curve": [[round(t, 2), round(m, 2)] for t, m in raw["rss"]],
           "swap_log": [{"t": round(t, 2), "target": tg, "status": st, "build_s": b} for t, tg, st, b in raw["swaps"]],
           "timeline": rows}
    print(f"\n{'kind':<10} {'n':>7} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for kind, s in summary["by_kind"].items():
        print(f"{kind:<10} {s['n']:>7} {s['p50_ms']:>8.1f} {s['p99_ms']:>8.1f} {s['max_ms']:>8.1f}")
    print(f"{'all':<10} {summary['requests']:>7} {summary['p50_ms']:>8.1f} {summary['p99_ms']:>8.1f} "
          f"{summary['max_ms']:>8.1f}")
    print(f"failed requests: {summary['failed']}; swaps: {summary['swaps']} ({summary['swaps_failed']} failed); "
          f"RSS {summary['rss_first_mb']:.1f} -> {summary['rss_last_mb']:.1f} MiB "
          f"({summary['rss_growth_mb']:+.1f}; {summary['rss_slope_mb_per_min']:+.2f} MiB/min); "
          f"verdict: {'PASS' if summary['pass'] else 'FAIL'}")
    if summary["loadavg_1min"]:
        la = summary["loadavg_1min"]
        print(f"machine load average (1 min) during the run: {la['min']:.1f} .. {la['max']:.1f} "
              f"(median {la['median']:.1f}) on {os.cpu_count()} CPUs; swap build s: median "
              f"{summary['swap_load_s_median']}, max {summary['swap_load_s_max']}")
    sh, base = slow["share_of_slow"], slow["share_of_all"]
    print(f"requests over {args.p99_ms:g} ms: {slow['n_slow']} of {slow['n']} {slow['slow_by_kind']}; share "
          + ", ".join(f"{k} {sh[k]:.0%} (all {base[k]:.0%})" for k in sh))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=1))
    if args.png and plot(raw, rows, args.png, warmup=warmup,
                         title=f"winnow soak: {args.rate:g} req/s for {args.duration / 60:g} min, "
                               f"p99 {summary['p99_ms']:.1f} ms, {summary['failed']} failed"):
        print(f"RSS curve: {args.png}")
    if tmp is not None:
        tmp.cleanup()
    sys.exit(0 if summary["pass"] else 1)


if __name__ == "__main__":
    main()
