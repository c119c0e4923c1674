"""Versioned model bundles: write atomically, verify on load, activate, roll back.

Layout of ``<home>/bundles/<version>/`` (data only, no pickle):

    manifest.json        schema_version, version, created_at, data range and counts, models,
                         index info, offline metrics, files {relative path: sha256}
    user_ids.json        external user ids in index order (IdMap.to_list)
    item_ids.json        external item ids in index order
    categories.json      category names; items.npz "category" codes index into it
    items.npz            category int32, available bool, sponsored bool, created_at int64,
                         popularity float32, trending float32   (all [n_items])
    models/<name>/       Recommender.save (model.json + arrays.npz)
    index/               VectorIndex.save over ALS item factors (ids = item indices)

``<home>/bundles/ACTIVE`` holds the active version's name; it is replaced atomically
(write temp, fsync, os.replace). A bundle directory is built under ``.tmp-<version>`` and
renamed into place only when complete, so a crash never leaves a half-written bundle visible.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from winnow.core.errors import BundleError
from winnow.core.ids import IdMap

SCHEMA_VERSION = 1
VERSION_RE = re.compile(r"^[0-9]{8}T[0-9]{6}Z-[0-9a-f]{6}$")
ACTIVE = "ACTIVE"
HISTORY = "HISTORY"  # activation history, one version per line (rollback pops it)
ITEM_ARRAYS = ("category", "available", "sponsored", "created_at", "popularity", "trending")


def check_version(version: str) -> str:
    """The version if it matches VERSION_RE (e.g. 20261126T014516Z-ab12cd), else BundleError."""
    if not isinstance(version, str) or not VERSION_RE.match(version):
        raise BundleError(f"invalid bundle version {version!r}: expected YYYYMMDDTHHMMSSZ-xxxxxx")
    return version


def bundles_dir(home: str | Path) -> Path:
    return Path(home) / "bundles"


@dataclass
class BundleInfo:
    """A bundle on disk: its version, directory and manifest."""

    version: str
    path: Path
    manifest: dict[str, Any]


@dataclass
class Bundle:
    """A verified, loaded bundle (what the server builds a pipeline from)."""

    info: BundleInfo
    user_ids: IdMap
    item_ids: IdMap
    category_names: list[str]
    items: dict[str, np.ndarray]
    models: dict[str, Any] = field(default_factory=dict)
    index: Any = None

    @property
    def version(self) -> str:
        return self.info.version


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(root: Path) -> None:
    for dirpath, _, files in os.walk(root):
        for name in files:
            with open(Path(dirpath) / name, "rb") as f:
                os.fsync(f.fileno())
        _fsync_dir(Path(dirpath))


def write_bundle(home: str | Path, version: str, *, manifest: dict[str, Any],
                 fill: Callable[[Path], None]) -> BundleInfo:
    """Create ``<home>/bundles/<version>`` atomically.

    ``fill(tmp_dir)`` writes every file except manifest.json; this function then checksums all
    files, writes the manifest, fsyncs the tree and renames the directory into place.
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
        full = {**manifest, "schema_version": SCHEMA_VERSION, "format": "winnow-bundle",
                "version": version, "files": files}
        (tmp / "manifest.json").write_text(json.dumps(full, indent=2, sort_keys=True), encoding="utf-8")
        _fsync_tree(tmp)
        os.replace(tmp, final)
        _fsync_dir(root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return BundleInfo(version, final, full)


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def list_bundles(home: str | Path) -> list[BundleInfo]:
    """Complete bundles (valid version name and a readable manifest), oldest first."""
    root = bundles_dir(home)
    out = []
    if not root.is_dir():
        return out
    for d in sorted(root.iterdir()):
        if d.is_dir() and VERSION_RE.match(d.name) and (d / "manifest.json").is_file():
            try:
                manifest = json.loads((d / "manifest.json").read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError):
                continue
            out.append(BundleInfo(d.name, d, manifest))
    return out


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


def activate(home: str | Path, version: str, *, verify: bool = True) -> BundleInfo:
    """Verify ``version`` (checksums; skip with verify=False when just loaded) and make it
    ACTIVE; BundleError if it is bad."""
    check_version(version)
    path = bundles_dir(home) / version
    if verify:
        verify_bundle(path)
    elif not (path / "manifest.json").is_file():
        raise BundleError(f"no bundle {version!r} at {path}")
    hist = _history(home)
    if not hist or hist[-1] != version:
        hist.append(version)
    _write_atomic(bundles_dir(home) / HISTORY, "\n".join(hist[-100:]) + "\n")
    _write_atomic(bundles_dir(home) / ACTIVE, version + "\n")
    return BundleInfo(version, path, json.loads((path / "manifest.json").read_text(encoding="utf-8")))


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
    """Activate the previously active version (and drop the current one from the history)."""
    prev = previous_version(home)
    current = active_version(home)
    hist = [v for v in _history(home) if v != current]
    while hist and hist[-1] != prev:
        hist.pop()
    _write_atomic(bundles_dir(home) / HISTORY, "\n".join(hist) + "\n")
    return activate(home, prev, verify=verify)


def verify_bundle(path: str | Path) -> dict[str, Any]:
    """Check manifest, schema version and every file's sha256; returns the manifest."""
    d = Path(path)
    mpath = d / "manifest.json"
    try:
        manifest = json.loads(mpath.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BundleError(f"{mpath}: missing (not a bundle, or an incomplete one)") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise BundleError(f"{mpath}: unreadable manifest: {exc}") from None
    if manifest.get("format") != "winnow-bundle":
        raise BundleError(f"{mpath}: not a winnow bundle (format {manifest.get('format')!r})")
    if manifest.get("schema_version") != SCHEMA_VERSION:
        raise BundleError(f"{mpath}: schema_version {manifest.get('schema_version')!r} is not "
                          f"supported (this winnow reads {SCHEMA_VERSION})")
    files = manifest.get("files")
    if not isinstance(files, dict) or not files:
        raise BundleError(f"{mpath}: no file list")
    for rel, digest in files.items():
        p = d / rel
        if ".." in Path(rel).parts or not p.is_file():
            raise BundleError(f"{d}: file {rel!r} listed in the manifest is missing")
        if sha256_file(p) != digest:
            raise BundleError(f"{d}: checksum mismatch for {rel!r} (file corrupt or modified)")
    return manifest


def load_bundle(path: str | Path) -> Bundle:
    """Verify and load a bundle (ids, item arrays, models, index); BundleError if anything is off."""
    from winnow.index import load_index
    from winnow.models.registry import load_model

    d = Path(path)
    manifest = verify_bundle(d)
    try:
        user_ids = IdMap.from_list("user", json.loads((d / "user_ids.json").read_text(encoding="utf-8")))
        item_ids = IdMap.from_list("item", json.loads((d / "item_ids.json").read_text(encoding="utf-8")))
        cats = json.loads((d / "categories.json").read_text(encoding="utf-8"))
        with np.load(d / "items.npz", allow_pickle=False) as z:
            items = {k: z[k] for k in ITEM_ARRAYS}
        for k, arr in items.items():
            if len(arr) != len(item_ids):
                raise BundleError(f"{d}/items.npz: {k} has {len(arr)} rows for {len(item_ids)} items")
        models = {}
        for name in manifest.get("models", []):
            models[name] = load_model(d / "models" / name)
        index = load_index(d / "index") if (d / "index").is_dir() else None
    except BundleError:
        raise
    except (OSError, ValueError, KeyError) as exc:
        raise BundleError(f"{d}: cannot load bundle: {exc}") from None
    info = BundleInfo(manifest["version"], d, manifest)
    return Bundle(info, user_ids, item_ids, list(cats), items, models, index)
