"""The on-disk bundle format: one place that names every file (winnow.bundle owns it).

Layout of ``<home>/bundles/<version>/`` (data only, no pickle; every file is listed with its
sha256 in the manifest and verified before anything is loaded):

    manifest.json        format "winnow-bundle", schema_version, version, created_at, data range and
                         counts (``data.cut`` when trained on a time cut), models (names saved under
                         models/), sources, index info, offline metrics, ranker report, engine,
                         stages, ``warm_start`` (the bundle ALS / the two-tower continued from:
                         version + manifest sha256 or null with a reason; per component warm /
                         cold, ids carried / new, iterations / epochs; winnow.bundle.warm),
                         files {relative path: sha256}; ``lifecycle`` when the autopilot
                         wrote it (cycle, role, snapshot hash, gate verdict and reasons, served)
    user_ids.json        external user ids in index order (IdMap.to_list)
    item_ids.json        external item ids in index order
    categories.json      category names; items.npz "category" codes index into it
    items.npz            category int32, available bool, sponsored bool, created_at int64,
                         popularity float32, trending float32   (all [n_items])
    models/<name>/       Recommender.save (model.json + arrays.npz), one per name in "models"
    index/               VectorIndex.save over the ALS item factors (ids = item indices)
    ranker/              the served ranker, when trained: ranker.txt (LightGBM text model),
                         ranker.json (feature spec, parameters, importance), features.npz
                         (FeatureCatalog arrays, indexed like the bundle's ids)
    segment/             SegmentPopularity.save (segment.json + segment.npz), when a
                         ``segment_popular`` source is configured
    profile.json         the reference profile of the training data's last [drift] window_days
                         (winnow.evaluation.drift_profile), when written: drift monitoring
    components/<name>/   the artefact of a component that stores neither a model nor one of the
                         parts above (its own files; winnow.components.base.Component.save)

Outside the bundle directories: ``<home>/bundles/ACTIVE`` (the active version's name, replaced
atomically) and ``<home>/bundles/HISTORY`` (activation history, one version per line).

Compatibility: ``SCHEMA_VERSION`` changes only when a reader of this version could not read the
new layout; a bundle with another schema_version is refused with a BundleError naming both.
"""

from __future__ import annotations

import re
import secrets
import time
from pathlib import Path

from winnow.core.errors import BundleError

FORMAT = "winnow-bundle"
SCHEMA_VERSION = 1
VERSION_RE = re.compile(r"^[0-9]{8}T[0-9]{6}Z-[0-9a-f]{6}$")
ACTIVE = "ACTIVE"
HISTORY = "HISTORY"
POINTER_LOCK = ".pointer.lock"  # flock held while ACTIVE / HISTORY are read-modified-written
MANIFEST = "manifest.json"
USER_IDS = "user_ids.json"
ITEM_IDS = "item_ids.json"
CATEGORIES = "categories.json"
ITEMS = "items.npz"
MODELS_DIR = "models"
INDEX_DIR = "index"
RANKER_DIR = "ranker"
SEGMENT_DIR = "segment"
COMPONENTS_DIR = "components"
PROFILE = "profile.json"
RANKER_FILES = ("ranker.txt", "ranker.json", "features.npz")
ITEM_ARRAYS = ("category", "available", "sponsored", "created_at", "popularity", "trending")


def check_version(version: str) -> str:
    """The version if it matches VERSION_RE (e.g. 20261126T014516Z-ab12cd), else BundleError."""
    if not isinstance(version, str) or not VERSION_RE.match(version):
        raise BundleError(f"invalid bundle version {version!r}: expected YYYYMMDDTHHMMSSZ-xxxxxx")
    return version


def new_version(now: float | None = None) -> str:
    """A sortable, unique bundle version: 20261126T014516Z-ab12cd."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() if now is None else now))
    return f"{stamp}-{secrets.token_hex(3)}"


def bundles_dir(home: str | Path) -> Path:
    """``<home>/bundles``: every version's directory plus ACTIVE and HISTORY."""
    return Path(home) / "bundles"


def model_dir(bundle_dir: str | Path, name: str) -> Path:
    """Where the model saved under ``name`` lives inside a bundle."""
    return Path(bundle_dir) / MODELS_DIR / name


def part_dir(bundle_dir: str | Path, name: str) -> Path:
    """Where a component's own artefact ``name`` lives inside a bundle (components/<name>/)."""
    return Path(bundle_dir) / COMPONENTS_DIR / name
