"""The manifest: what a bundle holds, and the check that it is whole (every file's sha256)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from winnow.bundle.layout import FORMAT, MANIFEST, SCHEMA_VERSION
from winnow.core.errors import BundleError


@dataclass
class BundleInfo:
    """A bundle on disk: its version, directory and manifest."""

    version: str
    path: Path
    manifest: dict[str, Any]


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def verify_bundle(path: str | Path) -> dict[str, Any]:
    """Check manifest, format, schema version and every file's sha256; returns the manifest.

    BundleError names the problem: missing/unreadable manifest, another format, a
    schema_version this winnow does not read (both versions named), a missing or modified file.
    """
    d = Path(path)
    mpath = d / MANIFEST
    try:
        manifest = json.loads(mpath.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BundleError(f"{mpath}: missing (not a bundle, or an incomplete one)") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise BundleError(f"{mpath}: unreadable manifest: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        fmt = manifest.get("format") if isinstance(manifest, dict) else None
        raise BundleError(f"{mpath}: not a winnow bundle (format {fmt!r})")
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
