"""The drift result shared by one home's workers (evaluation/drift_shared.py): a worker killed
mid-write leaves the previous result readable and releases the lock; the lock excludes another
process; an unreadable document is reported as absent, never served. Other processes are real
(``python -c``), and every wait is on a condition with a deadline."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from winnow.evaluation.drift_shared import SharedResult

CHILD = """
import os, sys
from pathlib import Path
from winnow.evaluation.drift_shared import SharedResult
shared = SharedResult(Path(sys.argv[1]))
mode = sys.argv[2]
with shared.lock() as held:
    assert held, "the child could not take the lock"
    if mode == "crash-before-rename":  # the temp file is written; the process dies before the rename
        def stuck(src, dst):
            print("writing", flush=True)
            sys.stdin.read()  # blocks until the test kills this process (its stdin never closes first)
        os.replace = stuck
        shared.write({"bundle": "v2", "computations": 2})
    else:  # hold the lock until killed
        print("holding", flush=True)
        sys.stdin.read()  # held until killed
"""


def _child(home: Path, mode: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.Popen([sys.executable, "-c", CHILD, str(home), mode], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, env=env)


def _wait_line(proc: subprocess.Popen[str], expected: str, timeout: float = 60.0) -> None:
    """Until the child prints ``expected`` (readline blocks; the deadline is the child's kill)."""
    end = time.monotonic() + timeout
    assert proc.stdout is not None
    while time.monotonic() < end:
        line = proc.stdout.readline()
        if line.strip() == expected:
            return
        if not line and proc.poll() is not None:
            raise AssertionError(f"child exited with {proc.returncode} before printing {expected!r}")
    proc.kill()
    raise AssertionError(f"child did not print {expected!r} within {timeout} s")


def _kill(proc: subprocess.Popen[str]) -> None:
    proc.kill()  # SIGKILL: no cleanup runs in the child
    proc.wait(30)


def test_a_worker_killed_mid_write_leaves_the_previous_result_and_releases_the_lock(tmp_path: Path) -> None:
    shared = SharedResult(tmp_path)
    with shared.lock() as held:
        assert held
        shared.write({"bundle": "v1", "computations": 1})
    proc = _child(tmp_path, "crash-before-rename")
    try:
        _wait_line(proc, "writing")
        with shared.lock() as held:  # the child holds it while it writes
            assert not held
        assert list(shared.dir.glob(".live.json.*.tmp"))  # the new document was on its way
    finally:
        _kill(proc)
    doc = shared.read()
    assert doc is not None and doc["bundle"] == "v1" and doc["computations"] == 1
    with shared.lock() as held:  # the kernel released the dead child's lock
        assert held
        shared.write({"bundle": "v3", "computations": 3})  # and the dead writer's stray temp is removed
    doc = shared.read()
    assert doc is not None and doc["bundle"] == "v3"
    assert not list(shared.dir.glob(".live.json.*.tmp"))


def test_the_lock_excludes_another_process_and_a_bounded_wait_gives_up(tmp_path: Path) -> None:
    shared = SharedResult(tmp_path)
    proc = _child(tmp_path, "hold")
    try:
        _wait_line(proc, "holding")
        t0 = time.monotonic()
        with shared.lock(wait_s=0.3) as held:
            assert not held
        assert time.monotonic() - t0 >= 0.3  # it did wait, then gave up
    finally:
        _kill(proc)
    with shared.lock() as held:
        assert held


@pytest.mark.parametrize("text", ["{\"bundle\": \"v1\", \"comp", "[1, 2]", "{\"bundle\": \"v1\"}", ""])
def test_an_unreadable_or_foreign_document_reads_as_absent(tmp_path: Path, text: str) -> None:
    shared = SharedResult(tmp_path)
    shared.dir.mkdir(parents=True)
    shared.path.write_text(text)
    assert shared.read() is None
    assert SharedResult(tmp_path / "elsewhere").read() is None  # no file yet


def test_a_refresh_request_reaches_the_fifo_holder_and_says_when_nobody_holds_it(tmp_path: Path) -> None:
    import select

    shared = SharedResult(tmp_path)
    assert shared.request_refresh() is False and not shared.monitor_running()  # no FIFO yet
    rfd, wfd = shared.open_wakeup()
    try:
        assert shared.monitor_running()
        assert select.select([rfd], [], [], 0)[0] == []  # monitor_running() woke nobody
        assert shared.request_refresh() is True
        assert select.select([rfd], [], [], 5)[0] == [rfd] and os.read(rfd, 16) == b"r"
    finally:
        os.close(rfd)
        os.close(wfd)
    assert shared.request_refresh() is False and not shared.monitor_running()  # the FIFO stays, nobody reads
    shared.fifo_path.unlink()
    shared.fifo_path.write_text("not a fifo")  # something else took the name: the monitor re-creates it
    rfd, wfd = shared.open_wakeup()
    os.close(rfd)
    os.close(wfd)
