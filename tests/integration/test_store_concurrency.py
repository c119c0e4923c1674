"""Cross-process behaviour of the SQLite store: concurrent reads, and kill -9 durability."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pandas as pd

from winnow.data.sqlite_store import SQLiteStore

_READER = textwrap.dedent("""
    import sys, time
    from winnow.data.sqlite_store import SQLiteStore
    store = SQLiteStore(sys.argv[1])
    target, seen = int(sys.argv[2]), []
    print("ready", flush=True)
    deadline = time.time() + 60
    while time.time() < deadline:
        n = len(store.read_events())
        if not seen or n != seen[-1]:
            seen.append(n)
        if n >= target:
            break
    print("seen", *seen, flush=True)
""")

_WRITER = textwrap.dedent("""
    import sys
    import pandas as pd
    from winnow.data.sqlite_store import SQLiteStore
    store = SQLiteStore(sys.argv[1])  # synchronous=full: the default
    k = 0
    while True:
        frame = pd.DataFrame({"user_id": [f"u{i % 7}" for i in range(50)],
                              "item_id": [f"i{i}" for i in range(50)], "event_type": "view",
                              "timestamp": [k * 100 + i for i in range(50)],
                              "event_id": [f"b{k}-{i}" for i in range(50)]})
        store.append_events(frame)
        print("ack", k, flush=True)  # acknowledged: append_events returned
        k += 1
""")


def _batch(k: int) -> pd.DataFrame:
    return pd.DataFrame({"user_id": ["u1", "u2"], "item_id": [f"i{k}", "j"], "event_type": "click",
                         "timestamp": [k, k]})


def test_second_process_reads_while_this_one_writes(tmp_path: Path) -> None:
    path = tmp_path / "w.db"
    store = SQLiteStore(path)
    store.append_events(_batch(0))
    batches = 200
    reader = subprocess.Popen([sys.executable, "-c", _READER, str(path), str(2 * batches)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert reader.stdout is not None
        assert reader.stdout.readline().strip() == "ready"
        for k in range(1, batches):
            store.append_events(_batch(k))
            if k % 20 == 0:
                time.sleep(0.01)  # pacing, not a wait: gives the reader room to observe intermediate states
        out, err = reader.communicate(timeout=60)
    finally:
        reader.kill()
    assert reader.returncode == 0, err
    seen = [int(x) for x in out.split()[1:]]
    assert seen[-1] == 2 * batches
    assert seen == sorted(seen)  # never saw a count go backwards
    assert all(n % 2 == 0 for n in seen)  # never saw half a batch
    store.close()


def test_kill_9_loses_no_acknowledged_batch(tmp_path: Path) -> None:
    path = tmp_path / "w.db"
    SQLiteStore(path).close()
    writer = subprocess.Popen([sys.executable, "-c", _WRITER, str(path)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    acked = -1
    try:
        assert writer.stdout is not None
        while acked < 30:
            line = writer.stdout.readline()
            assert line, writer.stderr.read() if writer.stderr else "writer died"
            acked = int(line.split()[1])
    finally:
        os.kill(writer.pid, signal.SIGKILL)
        writer.wait(timeout=10)
    assert writer.returncode == -signal.SIGKILL
    con = sqlite3.connect(path)
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    con.close()
    store = SQLiteStore(path)
    stored = {eid for (eid,) in store._reader().execute("SELECT event_id FROM events")}
    for k in range(acked + 1):
        assert all(f"b{k}-{i}" in stored for i in range(50)), f"acknowledged batch {k} lost"
    assert len(stored) % 50 == 0  # a batch in flight at the kill is all there or not at all
    log = store.read_events()
    assert len(log) == len(stored)  # the columnar blocks match the rows
    store.close()


def test_threads_share_one_store(tmp_path: Path) -> None:
    """FastAPI's threadpool: concurrent appends and reads on one SQLiteStore object."""
    store = SQLiteStore(tmp_path / "w.db")
    errors: list[BaseException] = []

    def work(t: int) -> None:
        try:
            for k in range(25):
                store.append_events(pd.DataFrame({"user_id": [f"t{t}"], "item_id": [f"i{k}"],
                                                  "timestamp": [k], "event_id": [f"{t}-{k}"]}))
                assert len(store.user_events(f"t{t}", limit=100)) == k + 1
                store.read_events()
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors, errors
    assert store.counts()["events"] == 100 and len(store.read_events()) == 100
    store.close()
