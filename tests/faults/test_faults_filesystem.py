"""Disk full and read-only on REAL file systems (root: the tests mount them), the real app and
its real SQLite store living on them:

- disk full: the home lives on a tmpfs of 16 MiB; a filler file takes every free byte, so
  SQLite's next write to its WAL fails with ENOSPC. Writes answer 503 naming the cause,
  nothing is written, reads keep serving; once the filler is deleted, writes work again.
- read-only: the home lives on ext4 in a loop device mounted ``errors=remount-ro``; an ext4
  error (``/sys/fs/ext4/<dev>/trigger_fs_error``, what a failing disk produces) makes the
  kernel remount it read-only under the open store (EROFS, which SQLite reports as
  SQLITE_IOERR). Writes answer 503, nothing is written, reads keep serving. Recovery is not tested here: a plain ``remount,ro`` is refused
  while files are open for writing (EBUSY), and an emergency read-only ext4 stays read-only
  until unmounted; the SQLite-layer test (test_faults_store.py, ``mode=ro``) covers recovery.

Needs root, ``mount``, loop devices, ``mkfs.ext4``: skipped without them, failed with CI=true.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
from serve_harness import make_home
from servers.throwaway import require
from test_faults_store import OPEN, _assert_refused, _reads_ok, _writes

from winnow.core.config import load_config
from winnow.data.sqlite_store import SQLiteStore
from winnow.serving.app import create_app


def _run(*cmd: str) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60)


def _can_mount(tmp: Path) -> bool:
    """Root and a mount that works here (containers may forbid it)."""
    if os.geteuid() != 0 or not shutil.which("mount"):
        return False
    probe = tmp / "probe"
    probe.mkdir()
    if _run("mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(probe)).returncode != 0:
        return False
    _run("umount", str(probe))
    return True


@pytest.fixture
def tmpfs_home(tmp_path: Path) -> Iterator[Path]:
    require(_can_mount(tmp_path), "cannot mount a tmpfs here (needs root and mount(2))", what="file-system fault")
    mnt = tmp_path / "tmpfs"
    mnt.mkdir()
    assert _run("mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mnt)).returncode == 0
    try:
        yield mnt
    finally:
        _run("umount", "-l", str(mnt))


@pytest.fixture
def ext4_home(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """(mount point, /sys/fs/ext4/<loop device>) of a fresh 32 MiB ext4, errors=remount-ro."""
    require(_can_mount(tmp_path) and shutil.which("mkfs.ext4") is not None and shutil.which("losetup") is not None,
            "cannot mount an ext4 loop device here (needs root, mount(2), losetup, mkfs.ext4)",
            what="file-system fault")
    image, mnt = tmp_path / "ext4.img", tmp_path / "ext4"
    mnt.mkdir()
    with open(image, "wb") as f:
        f.truncate(32 << 20)
    assert _run("mkfs.ext4", "-q", "-F", str(image)).returncode == 0
    dev = _run("losetup", "--find", "--show", str(image))
    require(dev.returncode == 0, f"no loop device: {dev.stderr.strip()}", what="file-system fault")
    loop = dev.stdout.strip()
    try:
        r = _run("mount", "-o", "errors=remount-ro", loop, str(mnt))
        assert r.returncode == 0, r.stderr
        sysfs = Path("/sys/fs/ext4") / Path(loop).name
        require((sysfs / "trigger_fs_error").exists(), f"{sysfs}/trigger_fs_error missing (kernel too old)",
                what="file-system fault")
        yield mnt, sysfs
    finally:
        _run("umount", "-l", str(mnt))
        _run("losetup", "-d", loop)


def _fill(directory: Path) -> Path:
    """Write a file in ``directory`` until the file system has no free byte left."""
    filler = directory / "filler"
    with open(filler, "wb", buffering=0) as f:
        chunk = b"\0" * (1 << 20)
        while True:
            try:
                f.write(chunk)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc
                if len(chunk) == 1:
                    break
                chunk = chunk[: len(chunk) // 2]
    assert os.statvfs(directory).f_bavail == 0
    return filler


def _serve(home: Path) -> tuple[TestClient, SQLiteStore]:
    store = SQLiteStore(home / "winnow.db")
    return TestClient(create_app(load_config(home, overrides=OPEN), store=store)), store


def test_full_tmpfs_refuses_writes_with_503_reads_keep_serving_then_recovers(tmpfs_home: Path) -> None:
    make_home(tmpfs_home, n_users=100, n_items=200, n_events=3000)
    client, store = _serve(tmpfs_home)
    with client:
        before = store.counts()
        filler = _fill(tmpfs_home)
        try:
            _assert_refused(_writes(client, "full"), "database or disk is full (SQLITE_FULL)")
            _reads_ok(client)
            after = store.counts()
            assert (after["events"], after["items"]) == (before["events"], before["items"])
            assert store.get_user("full-user") is None and len(store.user_events("u5")) > 0
        finally:
            filler.unlink()
        ok = _writes(client, "after-full")
        assert [r.status_code for r in ok] == [200, 200, 200, 200], [r.text for r in ok]
        assert store.counts()["events"] == before["events"] + 800 - ok[3].json()["erased"]["events"]


def test_ext4_remounted_read_only_refuses_writes_with_503_reads_keep_serving(ext4_home) -> None:
    mnt, sysfs = ext4_home
    make_home(mnt, n_users=100, n_items=200, n_events=3000)
    client, store = _serve(mnt)
    with client:
        before = store.counts()
        (sysfs / "trigger_fs_error").write_text("winnow fault test: simulated disk error\n")
        with pytest.raises(OSError) as err:
            (mnt / "probe").write_text("x")
        assert err.value.errno == errno.EROFS  # the kernel really remounted it read-only
        _assert_refused(_writes(client, "ro"), "disk I/O error (SQLITE_IOERR)")  # EROFS, as SQLite reports it
        _reads_ok(client)
        assert {k: v for k, v in store.counts().items() if k != "impressions"} == \
            {k: v for k, v in before.items() if k != "impressions"}
