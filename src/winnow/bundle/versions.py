"""Bundle directories: atomic write, list, activate, roll back (the ACTIVE pointer and HISTORY).

A bundle directory is built under ``.tmp-<version>`` and renamed into place only when complete,
so a crash never leaves a half-written bundle visible; ACTIVE and HISTORY are replaced
atomically (a uniquely named temp file, fsync, os.replace), and ``activate`` / ``rollback`` read,
modify and write them under an inter-process lock (``flock`` on ``bundles/.pointer.lock``), so
concurrent activations from several processes (CLI, admin API workers, a rollout's promotion)
leave ACTIVE equal to HISTORY's last line and lose no history line
(tests/integration/test_bundle_pointer_lock.py).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from winnow.bundle.layout import (
    ACTIVE,
    FORMAT,
    HISTORY,
    MANIFEST,
    POINTER_LOCK,
    SCHEMA_VERSION,
    VERSION_RE,
    bundles_dir,
    check_version,
)
from winnow.bundle.manifest import BundleInfo, sha256_file, verify_bundle
from winnow.core.errors import BundleError, UnknownIdError
from winnow.core.files import exclusive
from winnow.core.files import fsync_dir as _fsync_dir
from winnow.core.files import write_atomic as _write_atomic


def _fsync_tree(root: Path) -> None:
    for dirpath, _, files in os.walk(root):
        for name in files:
            with open(Path(dirpath) / name, "rb") as f:
                os.fsync(f.fileno())
        _fsync_dir(Path(dirpath))


def write_bundle(home: str | Path, version: str, *, manifest: dict[str, Any],
                 fill: Callable[[Path], None]) -> BundleInfo:
    """Create ``<home>/bundles/<version>`` atomically.

    ``fill(tmp_dir)`` writes every file except manifest.json (winnow.bundle.write.fill_bundle
    writes a BundleContents); this function then checksums all files, writes the manifest,
    fsyncs the tree and renames the directory into place.
    """
    check_version(version)
    root = bundles_dir(home)
    root.mkdir(parents=True, exist_ok=True)
    final = root / version
    if final.exists():
        raise BundleError(f"bundle {final} already exists")
    tmp = root / f".tmp-{version}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        fill(tmp)
        files = {}
        for p in sorted(tmp.rglob("*")):
            if p.is_file():
                files[p.relative_to(tmp).as_posix()] = sha256_file(p)
        full = {**manifest, "schema_version": SCHEMA_VERSION, "format": FORMAT,
                "version": version, "files": files}
        (tmp / MANIFEST).write_text(json.dumps(full, indent=2, sort_keys=True), encoding="utf-8")
        _fsync_tree(tmp)
        os.replace(tmp, final)
        _fsync_dir(root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return BundleInfo(version, final, full)


def label_bundle(home: str | Path, version: str, label: dict[str, Any]) -> BundleInfo:
    """Merge ``label`` into the bundle manifest's ``lifecycle`` entry (e.g. a gate verdict),
    replacing manifest.json atomically. The manifest lists the other files' checksums and is not
    itself listed, so the bundle still verifies; BundleError when there is no such bundle."""
    check_version(version)
    path = bundles_dir(home) / version
    try:
        manifest = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise BundleError(f"no readable bundle {version!r} at {path}: {exc}") from None
    manifest["lifecycle"] = {**(manifest.get("lifecycle") or {}), **label}
    _write_atomic(path / MANIFEST, json.dumps(manifest, indent=2, sort_keys=True))
    return BundleInfo(version, path, manifest)


def bundle_label(home: str | Path, version: str) -> dict[str, Any]:
    """The manifest's ``lifecycle`` entry of an existing bundle (label_bundle; {} when none or the
    manifest is unreadable -- verification refuses such a bundle); UnknownIdError when unknown."""
    path = bundle_path(home, version)
    try:
        manifest = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}
    label = manifest.get("lifecycle") if isinstance(manifest, dict) else None
    return dict(label) if isinstance(label, dict) else {}


def refuse_gate_failed(home: str | Path, version: str, *, force: bool = False, how: str = "force") -> None:
    """BundleError when ``version`` is labelled ``gate: failed`` by `winnow autopilot` and not
    ``force`` (``how`` names the override in the message; the one rule behind `winnow bundles activate` and the admin activate route: a
    challenger the gate failed is kept to be inspected, never served by accident)."""
    label = bundle_label(home, version)
    if label.get("gate") == "failed" and not force:
        reasons = "; ".join(label.get("reasons") or []) or "no reason recorded"
        raise BundleError(f"bundle {version} failed the autopilot's gate (cycle {label.get('cycle', '?')}: "
                          f"{reasons}); nothing was changed. Activate it anyway with {how}")


def list_bundles(home: str | Path) -> list[BundleInfo]:
    """Complete bundles (valid version name and a readable manifest), oldest first."""
    root = bundles_dir(home)
    out: list[BundleInfo] = []
    if not root.is_dir():
        return out
    for d in sorted(root.iterdir()):
        if d.is_dir() and VERSION_RE.match(d.name) and (d / MANIFEST).is_file():
            try:
                manifest = json.loads((d / MANIFEST).read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError):
                continue
            out.append(BundleInfo(d.name, d, manifest))
    return out


def newest_manifest(home: str | Path) -> dict[str, Any] | None:
    """The newest complete bundle's manifest (training seeds its stage estimates), or None."""
    bundles = list_bundles(home)
    return bundles[-1].manifest if bundles else None


def active_version(home: str | Path) -> str | None:
    """The active bundle's version, or None when nothing was ever activated."""
    p = bundles_dir(home) / ACTIVE
    if not p.is_file():
        return None
    return check_version(p.read_text(encoding="utf-8").strip())


def _history(home: str | Path) -> list[str]:
    p = bundles_dir(home) / HISTORY
    if not p.is_file():
        return []
    return [v for v in p.read_text(encoding="utf-8").split() if VERSION_RE.match(v)]


def bundle_path(home: str | Path, version: str) -> Path:
    """``<home>/bundles/<version>`` of an existing bundle: BundleError for a malformed version,
    UnknownIdError("bundle", version) when no such directory exists (HTTP 404, CLI error)."""
    check_version(version)
    path = bundles_dir(home) / version
    if not path.is_dir():
        raise UnknownIdError("bundle version", version)
    return path


def activate(home: str | Path, version: str, *, verify: bool = True) -> BundleInfo:
    """Verify ``version`` (checksums; skip with verify=False when just loaded) and make it
    ACTIVE; BundleError if it is bad."""
    check_version(version)
    path = bundles_dir(home) / version
    if verify:  # outside the lock: checksumming a large bundle must not hold other activations
        verify_bundle(path)
    elif not (path / MANIFEST).is_file():
        raise BundleError(f"no bundle {version!r} at {path}")
    with _pointer_lock(home):
        _point(home, version)
    return BundleInfo(version, path, json.loads((path / MANIFEST).read_text(encoding="utf-8")))


def _pointer_lock(home: str | Path) -> AbstractContextManager[None]:
    root = bundles_dir(home)
    root.mkdir(parents=True, exist_ok=True)
    return exclusive(root / POINTER_LOCK)


def _point(home: str | Path, version: str) -> None:
    """Append ``version`` to HISTORY and make it ACTIVE (the caller holds the pointer lock)."""
    hist = _history(home)
    if not hist or hist[-1] != version:
        hist.append(version)
    _write_atomic(bundles_dir(home) / HISTORY, "\n".join(hist[-100:]) + "\n")
    _write_atomic(bundles_dir(home) / ACTIVE, version + "\n")


def previous_version(home: str | Path) -> str:
    """The version activated before the current one; BundleError when there is none."""
    hist = _history(home)
    current = active_version(home)
    while hist and hist[-1] == current:
        hist.pop()
    if not hist:
        raise BundleError(f"no earlier activated bundle to roll back to (active: {current})")
    return hist[-1]


def rollback(home: str | Path, *, verify: bool = True) -> BundleInfo:
    """Activate the previously active version (and drop the current one from the history),
    under the pointer lock: the previous version is read and written in one step."""
    with _pointer_lock(home):
        prev = previous_version(home)
        path = bundles_dir(home) / prev
        if verify:
            verify_bundle(path)
        elif not (path / MANIFEST).is_file():
            raise BundleError(f"no bundle {prev!r} at {path}")
        current = active_version(home)
        hist = [v for v in _history(home) if v != current]
        while hist and hist[-1] != prev:
            hist.pop()
        _write_atomic(bundles_dir(home) / HISTORY, "\n".join(hist) + "\n")
        _point(home, prev)
    return BundleInfo(prev, path, json.loads((path / MANIFEST).read_text(encoding="utf-8")))
