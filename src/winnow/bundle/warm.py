"""The previous bundle a warm-started fit continues from (``[training] warm_start``,
``winnow train --warm-from``).

``open_warm_source(home, spec)`` resolves ``spec`` -- "active" (the ACTIVE bundle: the champion
of the autopilot) or a bundle directory -- verifies it (every file's sha256) and returns a
``WarmSource``: its version, the sha256 of its manifest.json (what the new manifest records), its
id maps and, loaded on first use, its models. ``carried_rows`` maps the previous id map onto the
new one (ids are strings in the store; indices differ between bundles when ids arrive in another
order). Nothing here trains: the components decide how to use the previous artefacts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from winnow.bundle.layout import ITEM_IDS, MANIFEST, USER_IDS, model_dir
from winnow.bundle.manifest import sha256_file, verify_bundle
from winnow.bundle.versions import active_version, bundles_dir
from winnow.core.errors import BundleError
from winnow.core.ids import IdMap
from winnow.models.base import Recommender

ACTIVE_SPEC = "active"


@dataclass
class WarmSource:
    """A verified previous bundle: ``version``, ``path``, ``sha256`` (of its manifest.json, which
    lists every file's sha256), ``manifest``, ``user_ids`` / ``item_ids`` (its id maps)."""

    version: str
    path: Path
    sha256: str
    manifest: dict[str, Any]
    user_ids: IdMap
    item_ids: IdMap
    _models: dict[str, Recommender | None] = field(default_factory=dict, repr=False)

    def describe(self) -> dict[str, str]:
        """What a manifest records of the source: {"version", "sha256"}."""
        return {"version": self.version, "sha256": self.sha256}

    def model(self, name: str) -> Recommender | None:
        """The bundle's model ``name`` (models/<name>/), loaded once; None when it has none."""
        if name not in self._models:
            from winnow.models.registry import load_model

            names = self.manifest.get("models") or []
            self._models[name] = load_model(model_dir(self.path, name)) if name in names else None
        return self._models[name]

    @property
    def data_until(self) -> int | None:
        """The newest event time the previous bundle trained on (manifest data.until), if known."""
        until = (self.manifest.get("data") or {}).get("until")
        return int(until) if isinstance(until, (int, float)) else None


def resolve_warm_spec(home: str | Path, spec: str) -> Path | None:
    """The bundle directory ``spec`` names: "active" -> the ACTIVE bundle (None when nothing was
    ever activated); anything else is a path to a bundle directory. BundleError names a path that
    is not a directory."""
    if spec == ACTIVE_SPEC:
        version = active_version(home)
        return None if version is None else bundles_dir(home) / version
    path = Path(spec).expanduser()
    if not path.is_dir():
        raise BundleError(f"warm start: {spec!r} is neither \"active\" nor a bundle directory "
                          f"(no directory at {path})")
    return path


def open_warm_source(home: str | Path, spec: str) -> WarmSource | None:
    """The verified bundle ``spec`` names (see resolve_warm_spec); None for "active" when no
    bundle is active. BundleError when the directory is not a whole winnow bundle (missing or
    modified files, another format) -- a warm start never continues from a damaged bundle."""
    path = resolve_warm_spec(home, spec)
    if path is None:
        return None
    try:
        manifest = verify_bundle(path)
    except BundleError as exc:
        raise BundleError(f"warm start from {spec!r}: {exc}") from None
    try:
        users = IdMap.from_list("user", json.loads((path / USER_IDS).read_text(encoding="utf-8")))
        items = IdMap.from_list("item", json.loads((path / ITEM_IDS).read_text(encoding="utf-8")))
    except (OSError, ValueError) as exc:
        raise BundleError(f"warm start from {path}: cannot read its id maps: {exc}") from None
    return WarmSource(str(manifest.get("version", path.name)), path, sha256_file(path / MANIFEST),
                      manifest, users, items)


def carried_rows(previous: IdMap, current: IdMap, n_previous: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(new_rows, old_rows) int64: the indices in ``current`` of the ids ``previous`` also holds,
    and their indices in ``previous`` (only those < ``n_previous`` when given: the rows the
    previous model has). Every other row of ``current`` is new."""
    old = np.asarray(previous.encode(current.ids, missing=-1), np.int64)
    limit = len(previous) if n_previous is None else int(n_previous)
    new_rows = np.flatnonzero((old >= 0) & (old < limit))
    return new_rows.astype(np.int64), old[new_rows]


def choose_warm_source(home: str | Path, spec: str, *, until: int | None = None) -> tuple[WarmSource | None, str]:
    """(the bundle a fit continues from, "") or (None, why the fit is cold) for ``spec``: "off",
    "active" or a bundle directory (BundleError for a bad one, see open_warm_source).

    With a time cut ``until`` (the autopilot trains before its holdout window), a bundle that
    trained on events at or after the cut is not used: its factors would carry the holdout's
    events into the challenger the gate then scores on that holdout."""
    if spec == "off":
        return None, "warm start off"
    source = open_warm_source(home, spec)
    if source is None:
        return None, "no active bundle to continue from"
    seen = source.data_until
    if until is not None and seen is not None and seen >= until:
        return None, (f"bundle {source.version} trained on events up to {seen}, at or after this "
                      f"run's cut {until}: continuing from it would leak the holdout window")
    return source, ""
