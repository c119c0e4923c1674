"""Dashboard read latency at scale: the item page's timeline (``Store.item_daily``), the user
page's history (``Store.user_events``) and the stats page's ``Store.counts``.

Fills a store (``--backend sqlite``, the default, or ``postgres``) with ``--events`` events (import) and ``--slates`` logged slates of
``--k`` items (through ``log_impressions`` in batches of 256, as the service's writer does),
all in the last ``--days`` days, then times ``item_daily`` (30 days) for random items: the
most popular ones (the worst case: most rows per item) and uniformly drawn ones;
then a user's latest 50 events for random users, and the store's counts.
``--reference`` also times the contract's reference scan (what ``ui_data.timeline`` did
before) on a few items. Prints a summary table; writes the JSON.

``--backend postgres`` without ``--url`` starts a throwaway PostgreSQL server (Debian binaries,
fsync=on, default settings; tests/servers/postgres.py) and removes it afterwards; with ``--url``
an empty database is filled, one already holding events is measured as it is.

    python bench/ui_reads.py --events 10000000 --slates 1000000 --json bench/results/ui_reads.json
    python bench/ui_reads.py --backend postgres --events 10000000 --slates 1000000 --json bench/results/ui_reads_pg.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from winnow.data.open_store import open_store
from winnow.data.sqlite_store import SQLiteStore
from winnow.data.store import Store

DAY = 86_400


def _pct(xs: list[float]) -> dict[str, float]:
    a = np.asarray(xs) * 1e3
    return {"p50_ms": round(float(np.percentile(a, 50)), 3), "p99_ms": round(float(np.percentile(a, 99)), 3),
            "max_ms": round(float(a.max()), 3), "n": len(a)}


def fill(store: Store, *, events: int, slates: int, items: int, users: int, k: int, days: int,
         now: int, seed: int = 0) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    pop = 1.0 / np.arange(1, items + 1) ** 0.8  # Zipf-like: a few items carry most events
    pop /= pop.sum()
    t0 = time.time()
    step = 1_000_000
    for start in range(0, events, step):
        n = min(step, events - start)
        store.import_all(events=pd.DataFrame({
            "user_id": pd.Series(rng.integers(0, users, n)).map("u{}".format),
            "item_id": pd.Series(rng.choice(items, n, p=pop)).map("i{}".format),
            "event_type": rng.choice(["view", "click", "purchase"], n, p=[0.6, 0.35, 0.05]),
            "value": 1.0, "timestamp": now - rng.integers(0, days * DAY, n)}))
    t1 = time.time()
    batch = 256
    for start in range(0, slates, batch):
        n = min(batch, slates - start)
        shown = rng.choice(items, (n, k), p=pop)
        ts = now - rng.integers(0, days * DAY, n)
        store.log_impressions([
            {"request_id": f"r{start + j}", "user_id": f"u{j % users}", "timestamp": int(ts[j]),
             "model_version": "v", "surface": "default", "context": {},
             "items": [{"item_id": f"i{it}", "position": p, "score": 0.0, "sources": ["als"], "propensity": 1.0}
                       for p, it in enumerate(shown[j].tolist())]} for j in range(n)])
    return {"import_events_s": round(t1 - t0, 1), "log_slates_s": round(time.time() - t1, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--slates", type=int, default=100_000)
    ap.add_argument("--items", type=int, default=100_000)
    ap.add_argument("--users", type=int, default=100_000)
    ap.add_argument("--k", type=int, default=20)
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--reads", type=int, default=500)
    ap.add_argument("--reference", type=int, default=3, help="reference-scan reads to time (0: none)")
    ap.add_argument("--backend", choices=("sqlite", "postgres"), default="sqlite")
    ap.add_argument("--db", help="SQLite: reuse/keep this store file (default: a temp file)")
    ap.add_argument("--url", help="PostgreSQL: this database (default: a throwaway server)")
    ap.add_argument("--json", required=True)
    args = ap.parse_args()
    now = int(time.time())
    server = None
    if args.backend == "postgres":
        url = args.url
        if url is None:
            sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
            from servers.postgres import start_postgres

            server = start_postgres(fsync=True)  # default durability: WAL flushed at every commit
            url = server.create_database("ui_reads")
        store = open_store(url)
        where = url
        fresh = store.counts()["events"] == 0
    else:
        path = Path(args.db or tempfile.mkdtemp(prefix="ui-reads-")) / "winnow.db" if not args.db else Path(args.db)
        fresh = not path.exists()
        store = SQLiteStore(path, synchronous="normal")
        where = str(path)
    try:
        result = measure(store, args, now, fresh=fresh, where=where)
    finally:
        store.close()
        if server is not None:
            server.stop()
    result["summary"] = summary(result)
    Path(args.json).write_text(json.dumps(result, indent=2), encoding="utf-8")
    print(result["summary"])


def summary(result: dict) -> str:
    """The result as a markdown table (read, p50, p99, max, reads)."""
    names = {"top_100_items": "item timeline, 30 days, 100 most popular items",
             "uniform_items": "item timeline, 30 days, uniformly drawn items",
             "user_events_50": "a user's latest 50 events", "counts": "store counts",
             "reference_scan_top_items": "reference scan (Store.item_daily of the base class)"}
    lines = [f"ui_reads on {result['store']}: {result['counts']['events']:,} events, "
             f"{result['counts']['impressions']:,} slates of {result['items_per_slate']} items",
             "| read | p50 ms | p99 ms | max ms | reads |", "|---|---|---|---|---|"]
    for key, r in result["item_daily_30d"].items():
        lines.append(f"| {names.get(key, key)} | {r['p50_ms']} | {r['p99_ms']} | {r['max_ms']} | {r['n']} |")
    return "\n".join(lines)


def measure(store: Store, args: argparse.Namespace, now: int, *, fresh: bool, where: str) -> dict:
    """Fill ``store`` when ``fresh``, then time the dashboard's reads."""
    build = fill(store, events=args.events, slates=args.slates, items=args.items, users=args.users, k=args.k,
                 days=args.days, now=now) if fresh else {"reused": where}
    print("build", build, flush=True)
    first_day = now // DAY - args.days + 1
    rng = np.random.default_rng(1)
    out: dict[str, object] = {}
    for name, draw in (("top_100_items", lambda: int(rng.integers(0, 100))),
                       ("uniform_items", lambda: int(rng.integers(0, args.items)))):
        lat = []
        for _ in range(args.reads):
            item = f"i{draw()}"
            t = time.perf_counter()
            store.item_daily(item, first_day=first_day, days=args.days)
            lat.append(time.perf_counter() - t)
        out[name] = _pct(lat)
        print(name, out[name], flush=True)
    lat = []
    for _ in range(min(args.reads, 200)):  # the dashboard's user page: a user's latest 50 events
        u = f"u{int(rng.integers(0, args.users))}"
        t = time.perf_counter()
        store.user_events(u, limit=50)
        lat.append(time.perf_counter() - t)
    out["user_events_50"] = _pct(lat)
    print("user_events", out["user_events_50"], flush=True)
    lat = []
    for _ in range(5):  # /ui/api/stats (cached there for a few seconds, but the refresh pays this)
        t = time.perf_counter()
        store.counts()
        lat.append(time.perf_counter() - t)
    out["counts"] = _pct(lat)
    print("counts", out["counts"], flush=True)
    if args.reference:
        lat = []
        for i in range(args.reference):
            t = time.perf_counter()
            Store.item_daily(store, f"i{i}", first_day=first_day, days=args.days)
            lat.append(time.perf_counter() - t)
        out["reference_scan_top_items"] = _pct(lat)
        print("reference scan", out["reference_scan_top_items"], flush=True)
    return {"benchmark": "ui_reads", "store": args.backend, "events": args.events, "slates": args.slates,
            "items_per_slate": args.k, "items": args.items, "days": args.days, "build": build,
            "counts": store.counts(), "item_daily_30d": out, "load_average": os.getloadavg(),
            "command": " ".join(["python", *sys.argv]), "goal": "<= 100 ms p99 at 10M events and 10M slates"}


if __name__ == "__main__":
    main()
