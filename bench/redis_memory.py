"""Redis memory per active user of the shared online state (serving/online_redis.py).

    python bench/redis_memory.py [--users 1000] [--events 50] [--json bench/results/redis_memory.json]

Writes ``--users`` x ``--events`` events (70% view, 25% click, 5% purchase over 100k items,
ids like ``user_0000042`` / ``item_012345``) into a throwaway SQLite store, starts a throwaway
redis-server (tests/servers/redis.py), loads every user's record through RedisOnlineState
(exactly what a replica does on a user's first request), then reports:

- ``memory_usage_bytes_per_user``: sum of ``MEMORY USAGE <key> SAMPLES 0`` over a user's keys
  (events list, purchases set, meta hash), averaged over users;
- ``used_memory_bytes_per_user``: growth of ``INFO memory`` used_memory divided by users
  (includes Redis' per-key dictionary and expiry overhead);
- ``get_hit_us``: p50/p99 microseconds of one ``get()`` of a loaded record (the per-request
  round trip and decoding, one client thread, server on the same machine).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import redis

ROOT = Path(__file__).resolve().parents[1]


def events(n_users: int, n_events: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = n_users * n_events
    types = rng.choice(["view", "click", "purchase"], size=n, p=[0.70, 0.25, 0.05])
    return pd.DataFrame({
        "user_id": [f"user_{u:07d}" for u in np.repeat(np.arange(n_users), n_events)],
        "item_id": [f"item_{i:06d}" for i in rng.integers(0, 100_000, size=n)],
        "event_type": types, "value": np.nan,
        "timestamp": 1_750_000_000 + rng.integers(0, 30 * 86_400, size=n),
        "event_id": None, "context": None})


def measure(n_users: int = 1000, n_events: int = 50) -> dict:
    sys.path.insert(0, str(ROOT / "tests"))
    from servers.redis import start_redis

    from winnow.core.config import load_config
    from winnow.data.open_store import open_store
    from winnow.serving.online_redis import RedisOnlineState

    home = Path(tempfile.mkdtemp(prefix="winnow-redismem-"))
    with start_redis() as rd:
        cfg = load_config(home, overrides={"online": {"url": rd.url}})
        store = open_store(cfg.store_url())
        client = redis.Redis.from_url(rd.url)
        try:
            store.append_events(events(n_users, n_events))
            state = RedisOnlineState(store, cfg.events, cfg.online)
            base = int(client.info("memory")["used_memory"])
            users = [f"user_{u:07d}" for u in range(n_users)]
            for u in users:
                rec = state.get(u)
                assert rec is not None and rec.event_count == n_events
            used = int(client.info("memory")["used_memory"]) - base
            per_key = [state.memory_usage(u) for u in users]
            times = []
            for u in users * 3:
                t0 = time.perf_counter()
                state.get(u)
                times.append((time.perf_counter() - t0) * 1e6)
            state.close()
        finally:
            client.close()
            store.close()
        version = redis.Redis.from_url(rd.url).info("server")["redis_version"]
    shutil.rmtree(home, ignore_errors=True)
    return {"users": n_users, "events_per_user": n_events, "history": cfg.online.history,
            "redis_version": version,
            "memory_usage_bytes_per_user": float(np.mean(per_key)),
            "used_memory_bytes_per_user": used / n_users,
            "get_hit_us": {"p50": float(np.percentile(times, 50)), "p99": float(np.percentile(times, 99))},
            "command": f"python bench/redis_memory.py --users {n_users} --events {n_events}"}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=1000)
    ap.add_argument("--events", type=int, default=50)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    out = measure(args.users, args.events)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=2))
    print(f"Redis {out['redis_version']}, {out['users']} users x {out['events_per_user']} events")
    print(f"  MEMORY USAGE per user (ev+pur+meta keys): {out['memory_usage_bytes_per_user']:.0f} bytes")
    print(f"  used_memory growth per user:            {out['used_memory_bytes_per_user']:.0f} bytes")
    print(f"  get() of a loaded record: p50 {out['get_hit_us']['p50']:.0f} us, p99 {out['get_hit_us']['p99']:.0f} us")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
