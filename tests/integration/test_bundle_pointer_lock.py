"""ACTIVE / HISTORY under concurrent activations from several PROCESSES (bundle/versions.py):
each activation is a read-modify-write of HISTORY then ACTIVE; with a shared temp name or
without the inter-process lock, writers in different processes trip over each other's temp
file (FileNotFoundError) or lose each other's history lines. Here every process activates its
own distinct versions, so the right final state is known: HISTORY holds every version exactly
once, ACTIVE is its last line, no temp file is left behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from winnow import bundle as bundles
from winnow.bundle.layout import ACTIVE, HISTORY, bundles_dir
from winnow.core.errors import BundleError

PROCESSES = 4
PER_PROCESS = 20  # 80 versions < HISTORY's 100-line cap: every one must stay

WORKER = """
import json, sys
from winnow import bundle as bundles
home, versions = sys.argv[1], json.loads(sys.argv[2])
for v in versions:
    bundles.activate(home, v)
"""


def _make(home: Path, n: int) -> list[str]:
    def fill(d: Path) -> None:
        (d / "x.json").write_text("{}", encoding="utf-8")

    return [bundles.write_bundle(home, f"20260101T{i // 60:04d}{i % 60:02d}Z-{i:06x}", manifest={},
                                 fill=fill).version for i in range(n)]


def test_concurrent_activations_from_processes_leave_active_and_history_consistent(tmp_path: Path) -> None:
    versions = _make(tmp_path, PROCESSES * PER_PROCESS)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, str(tmp_path),
                               json.dumps(versions[i::PROCESSES])], env=env, stderr=subprocess.PIPE, text=True)
             for i in range(PROCESSES)]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    root = bundles_dir(tmp_path)
    history = (root / HISTORY).read_text(encoding="utf-8").split()
    assert sorted(history) == sorted(versions)  # no activation lost, none twice
    assert (root / ACTIVE).read_text(encoding="utf-8").strip() == history[-1]
    for i in range(PROCESSES):  # each process's own order survives in HISTORY
        mine = versions[i::PROCESSES]
        assert [v for v in history if v in set(mine)] == mine
    assert [p.name for p in root.iterdir() if p.name.endswith(".tmp")] == []


def test_rollback_under_the_lock_and_a_refused_one_changes_nothing(tmp_path: Path) -> None:
    a, b, c = _make(tmp_path, 3)
    for v in (a, b, c):
        bundles.activate(tmp_path, v)
    assert bundles.rollback(tmp_path).version == b
    root = bundles_dir(tmp_path)
    assert (root / HISTORY).read_text(encoding="utf-8").split() == [a, b]
    (root / a / "x.json").write_text("tampered", encoding="utf-8")
    before = (root / HISTORY).read_text(encoding="utf-8"), (root / ACTIVE).read_text(encoding="utf-8")
    try:
        bundles.rollback(tmp_path)
    except BundleError as exc:
        assert "checksum mismatch" in str(exc)
    else:
        raise AssertionError("a corrupt previous bundle was rolled back to")
    assert ((root / HISTORY).read_text(encoding="utf-8"), (root / ACTIVE).read_text(encoding="utf-8")) == before
