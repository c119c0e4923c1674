"""Benchmark the stores: bulk import, columnar read, small appends, and a second process
reading while this one writes -- the embedded SQLite store and/or PostgreSQL.

Writes JSON and prints a table. Targets (issue section 2): bulk import >= 200k events/s,
read_events >= 1M events/s, a second process can read during writes.
Usage: python bench/store.py [--events N] [--json FILE] [--dir DIR]
           [--backend sqlite|postgres|both] [--url postgresql://...]
``--backend postgres|both`` without ``--url`` starts a throwaway PostgreSQL (Debian binaries,
fsync=on, default settings) via tests/servers/postgres.py and removes it afterwards; with
``--url`` the database must be empty (its tables are created, then filled).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from winnow.data.open_store import open_store
from winnow.data.sqlite_store import SQLiteStore
from winnow.data.store import Store
from winnow.data.validate import normalize_events

_READER = textwrap.dedent("""
    import sys, time
    from winnow.data.open_store import open_store
    store = open_store(sys.argv[1])
    print("ready", flush=True)
    reads, lat, sizes = 0, [], []
    end = time.time() + float(sys.argv[2])
    while time.time() < end:
        t = time.perf_counter(); n = len(store.read_events(since=0)); lat.append(time.perf_counter() - t)
        sizes.append(n); reads += 1
    print(reads, max(lat), sizes[0], sizes[-1], flush=True)
""")


def synthetic_events(n: int, *, seed: int = 0, event_ids: bool = False) -> pd.DataFrame:
    """n events over n/20 users and n/100 items, 5 types, 30% without value, string ids."""
    rng = np.random.default_rng(seed)
    users = np.array([f"user{i}" for i in range(max(n // 20, 1))], dtype=object)
    items = np.array([f"item{i}" for i in range(max(n // 100, 1))], dtype=object)
    value = rng.random(n) * 5
    value[rng.random(n) < 0.3] = np.nan
    frame = pd.DataFrame({
        "user_id": users[rng.integers(0, len(users), n)], "item_id": items[rng.integers(0, len(items), n)],
        "event_type": np.array(["view", "click", "add_to_cart", "purchase", "rating"], dtype=object)[
            rng.integers(0, 5, n)],
        "value": value, "timestamp": rng.integers(1_600_000_000, 1_700_000_000, n)})
    if event_ids:
        frame["event_id"] = [f"ev{seed}-{i}" for i in range(n)]
    return frame


def _appends(path: Path | str, synchronous: str, batches: int, size: int) -> dict[str, float]:
    """Latency of small appends (with event_ids); ``path`` is a SQLite file or a store URL."""
    store = open_store(path) if isinstance(path, str) else SQLiteStore(path, synchronous=synchronous)
    lat = []
    for k in range(batches):
        frame = synthetic_events(size, seed=1000 + k, event_ids=True)
        t = time.perf_counter()
        store.append_events(frame)
        lat.append(time.perf_counter() - t)
    store.close()
    ms = np.array(lat) * 1e3
    return {"p50_ms": round(float(np.percentile(ms, 50)), 2), "p99_ms": round(float(np.percentile(ms, 99)), 2),
            "events_per_s": round(batches * size / float(np.sum(lat)))}


def _concurrent(store: Store, url: str) -> dict[str, object]:
    """A second process reads (full read_events in a loop) while this one appends 1000-event batches."""
    reader = subprocess.Popen([sys.executable, "-c", _READER, url, "6"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    assert reader.stdout is not None and reader.stdout.readline().strip() == "ready"
    written, end = 0, time.time() + 5
    while time.time() < end:
        written += store.append_events(synthetic_events(1000, seed=written + 7, event_ids=True))
    rout, rerr = reader.communicate(timeout=300)
    ok = reader.returncode == 0
    parts = rout.split() if ok else ["0", "nan", "0", "0"]
    return {"reader_ok": ok, "reader_error": rerr.strip()[-300:] if not ok else "",
            "writer_events": written, "reader_reads": int(parts[0]),
            "reader_max_read_s": round(float(parts[1]), 3),
            "reader_first_n": int(parts[2]), "reader_last_n": int(parts[3])}


def run(n: int, workdir: Path) -> dict[str, object]:
    path = workdir / "bench.db"
    for suffix in ("", "-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    frame = synthetic_events(n)
    out: dict[str, object] = {"benchmark": "store", "n_events": n, "python": platform.python_version(),
                              "sqlite": sqlite3.sqlite_version, "machine": platform.machine()}

    t = time.perf_counter()
    normalize_events(frame)
    out["validate_events_per_s"] = round(n / (time.perf_counter() - t))

    store = SQLiteStore(path)  # synchronous=full (the default)
    t, cpu = time.perf_counter(), time.process_time()
    store.import_all(events=frame, source="bench")  # validation + keys + rows + blocks, one txn
    out["import_events_per_s"] = round(n / (time.perf_counter() - t))
    # CPU-time rate: what an unshared core gives (the bench box is shared; see load_average)
    out["import_events_per_cpu_s"] = round(n / (time.process_time() - cpu))
    out["load_average_1m"] = round(os.getloadavg()[0], 2)
    out["cpus"] = os.cpu_count()
    out["db_mib"] = round(sum(Path(str(path) + s).stat().st_size for s in ("", "-wal") if
                              Path(str(path) + s).exists()) / 2**20, 1)

    store.read_events()  # warm the page cache once, then time
    t, cpu = time.perf_counter(), time.process_time()
    log = store.read_events()
    out["read_events_per_s"] = round(len(log) / (time.perf_counter() - t))
    out["read_events_per_cpu_s"] = round(len(log) / max(time.process_time() - cpu, 1e-6))
    assert len(log) == n
    t = time.perf_counter()
    store.read_events(since=1_650_000_000, until=1_660_000_000)
    out["read_range_10pct_s"] = round(time.perf_counter() - t, 3)

    # the row path the blocks replace: sqlite3 + fetchall + numpy, for the record
    con = sqlite3.connect(path)
    t = time.perf_counter()
    rows = con.execute("SELECT uid, iid, tid, value, ts FROM events ORDER BY seq").fetchall()
    np.array(rows, dtype=np.float64)
    out["read_rows_sqlite3_per_s"] = round(len(rows) / (time.perf_counter() - t))
    del rows
    con.close()

    out["concurrent"] = _concurrent(store, f"sqlite:///{path.resolve()}")
    store.close()

    out["append_100_full"] = _appends(workdir / "full.db", "full", 200, 100)
    out["append_100_normal"] = _appends(workdir / "normal.db", "normal", 200, 100)
    out["append_1_full"] = _appends(workdir / "one.db", "full", 300, 1)
    return out


def _server_cpu_s(postmaster: int | None) -> float:
    """CPU seconds used so far by a local PostgreSQL: the postmaster (with its reaped children)
    plus its live backends/background processes; 0.0 when unknown (a remote --url)."""
    if postmaster is None:
        return 0.0
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid, ppid = int(stat.parent.name), int(fields[1])
        if pid == postmaster:
            total += sum(int(x) for x in fields[11:15]) / tick  # utime stime cutime cstime
        elif ppid == postmaster:
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


def run_postgres(n: int, url: str, *, postmaster: int | None = None) -> dict[str, object]:
    """The same measurements on PostgreSQL (``url``: an empty database; ``postmaster``: its pid
    when local, to count the server's CPU time too)."""
    import psycopg

    frame = synthetic_events(n)
    out: dict[str, object] = {"benchmark": "store-postgres", "n_events": n, "python": platform.python_version(),
                              "machine": platform.machine(), "psycopg": psycopg.__version__}
    store = open_store(url)
    with psycopg.connect(url.split("?")[0]) as con:
        out["postgres"] = con.execute("SHOW server_version").fetchone()[0]
        out["fsync"] = con.execute("SHOW fsync").fetchone()[0]
        out["synchronous_commit_store"] = "on"
    t, cpu, srv = time.perf_counter(), time.process_time(), _server_cpu_s(postmaster)
    store.import_all(events=frame, source="bench")  # validation + keys + binary COPY, one transaction
    out["import_events_per_s"] = round(n / (time.perf_counter() - t))
    out["import_client_cpu_s"] = round(time.process_time() - cpu, 2)
    out["import_server_cpu_s"] = round(_server_cpu_s(postmaster) - srv, 2)
    # CPU-time rate, client + server: what unshared cores give (the bench box is shared)
    out["import_events_per_cpu_s"] = round(n / (out["import_client_cpu_s"] + out["import_server_cpu_s"]))
    out["load_average_1m"] = round(os.getloadavg()[0], 2)
    out["cpus"] = os.cpu_count()
    store.read_events()  # warm the buffer cache once, then time
    t, cpu, srv = time.perf_counter(), time.process_time(), _server_cpu_s(postmaster)
    log = store.read_events()
    out["read_events_per_s"] = round(len(log) / (time.perf_counter() - t))
    out["read_events_per_cpu_s"] = round(len(log) / (time.process_time() - cpu + _server_cpu_s(postmaster) - srv))
    assert len(log) == n
    t = time.perf_counter()
    store.read_events(since=1_650_000_000, until=1_660_000_000)
    out["read_range_10pct_s"] = round(time.perf_counter() - t, 3)
    with psycopg.connect(url.split("?")[0]) as con:  # the row path read_events avoids, for the record
        t = time.perf_counter()
        rows = con.execute("SELECT uid, iid, tid, value, ts FROM events ORDER BY seq").fetchall()
        np.array(rows, dtype=np.float64)
        out["read_rows_psycopg_per_s"] = round(len(rows) / (time.perf_counter() - t))
        del rows
        out["db_mib"] = round(con.execute("SELECT pg_database_size(current_database())").fetchone()[0] / 2**20, 1)
    out["concurrent"] = _concurrent(store, url)
    store.close()
    out["append_100"] = _appends(url, "", 200, 100)
    out["append_1"] = _appends(url, "", 300, 1)
    return out


def _throwaway_postgres() -> tuple[Any, str, int]:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from servers.postgres import start_postgres

    server = start_postgres(fsync=True)  # default durability: WAL flushed at every commit
    pid = int((server.datadir / "postmaster.pid").read_text().split()[0])
    return server, server.create_database("bench"), pid


def _print_sqlite(result: dict, events: int) -> None:
    c = result["concurrent"]
    table = [
        ("validate events", f"{result['validate_events_per_s']:,} /s", ""),
        ("bulk import (import_all), wall", f"{result['import_events_per_s']:,} /s", ">= 200,000 /s"),
        ("bulk import, per CPU-second", f"{result['import_events_per_cpu_s']:,} /s",
         f"(load avg {result['load_average_1m']} on {result['cpus']} CPUs)"),
        ("read_events (all, columnar)", f"{result['read_events_per_s']:,} /s", ">= 1,000,000 /s"),
        ("  row path sqlite3+fetchall", f"{result['read_rows_sqlite3_per_s']:,} /s", "(not used)"),
        ("read_events 10% time range", f"{result['read_range_10pct_s']} s", ""),
        ("2nd process reads during writes", f"ok={c['reader_ok']} reads={c['reader_reads']} "
         f"max={c['reader_max_read_s']}s n {c['reader_first_n']:,}->{c['reader_last_n']:,}", "ok=True"),
        ("append 100 ev, sync=FULL", f"p50 {result['append_100_full']['p50_ms']} ms, "
         f"p99 {result['append_100_full']['p99_ms']} ms", ""),
        ("append 100 ev, sync=NORMAL", f"p50 {result['append_100_normal']['p50_ms']} ms, "
         f"p99 {result['append_100_normal']['p99_ms']} ms", ""),
        ("append 1 ev, sync=FULL", f"p50 {result['append_1_full']['p50_ms']} ms, "
         f"p99 {result['append_1_full']['p99_ms']} ms", ""),
        ("database size", f"{result['db_mib']} MiB", ""),
    ]
    print(f"store benchmark: {events:,} events, SQLite {result['sqlite']}")
    for name, got, target in table:
        print(f"  {name:<34} {got:<48} {target}")


def _print_side_by_side(res: dict[str, dict]) -> None:
    sq, pg = res.get("sqlite", {}), res.get("postgres", {})

    def cell(r: dict, key: str, sub: str | None = None, unit: str = " /s") -> str:
        v = r.get(key)
        if isinstance(v, dict) and sub:
            v = v.get(sub)
        return "-" if v is None else (f"{v:,}{unit}" if isinstance(v, int) else f"{v}{unit}")
    rows = [("bulk import (import_all), wall", "import_events_per_s", None, " /s"),
            ("bulk import, per CPU-second", "import_events_per_cpu_s", None, " /s"),
            ("read_events (all, columnar)", "read_events_per_s", None, " /s"),
            ("read_events, per CPU-second", "read_events_per_cpu_s", None, " /s"),
            ("row path fetchall (not used)", "read_rows_sqlite3_per_s" if sq else "read_rows_psycopg_per_s",
             None, " /s"),
            ("read_events 10% time range", "read_range_10pct_s", None, " s"),
            ("append 100 ev p50 (durable)", "append_100_full" if sq else "append_100", "p50_ms", " ms"),
            ("2nd process: reads during writes", "concurrent", "reader_reads", ""),
            ("database size", "db_mib", None, " MiB")]
    print(f"  {'':<34} {'SQLite ' + str(sq.get('sqlite', '')):<22} PostgreSQL {pg.get('postgres', '')}")
    for name, key, sub, unit in rows:
        pkey = {"append_100_full": "append_100", "read_rows_sqlite3_per_s": "read_rows_psycopg_per_s"}.get(key, key)
        print(f"  {name:<34} {cell(sq, key, sub, unit):<22} {cell(pg, pkey, sub, unit)}")


def main(argv: list[str] | None = None) -> dict[str, object]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=2_000_000)
    ap.add_argument("--json", type=Path, default=Path("bench/results/store.json"))
    ap.add_argument("--dir", type=Path, default=None, help="where to put the database (default: a temp dir)")
    ap.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="sqlite")
    ap.add_argument("--url", default=None, help="postgresql://... of an empty database (default: a throwaway server)")
    args = ap.parse_args(argv)
    results: dict[str, dict] = {}
    if args.backend in ("sqlite", "both"):
        if args.dir is not None:
            args.dir.mkdir(parents=True, exist_ok=True)
            results["sqlite"] = run(args.events, args.dir)
        else:
            with tempfile.TemporaryDirectory() as tmp:
                results["sqlite"] = run(args.events, Path(tmp))
    if args.backend in ("postgres", "both"):
        server, url, pid = (None, args.url, None) if args.url else _throwaway_postgres()
        try:
            results["postgres"] = run_postgres(args.events, url, postmaster=pid)
        finally:
            if server is not None:
                server.stop()
    result = results["sqlite"] if args.backend == "sqlite" else results
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    if "sqlite" in results:
        _print_sqlite(results["sqlite"], args.events)
    if "postgres" in results:
        print(f"store benchmark: {args.events:,} events, side by side (load avg "
              f"{results['postgres']['load_average_1m']} on {results['postgres']['cpus']} CPUs)")
        _print_side_by_side(results)
    return result


if __name__ == "__main__":
    main()
