"""Read a bundle: verify the manifest and checksums first, then load ids, item arrays, models,
the ANN index and (on request) the served ranker's files and the segment model.

Everything read here was written by winnow.bundle.write (same layout, winnow.bundle.layout);
nothing is unpickled (``np.load(allow_pickle=False)``, JSON, LightGBM text, faiss index files).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Mapping
from typing import Any

import numpy as np

from winnow.bundle.layout import (
    CATEGORIES,
    INDEX_DIR,
    ITEM_ARRAYS,
    ITEM_IDS,
    ITEMS,
    PROFILE,
    RANKER_DIR,
    RANKER_FILES,
    SEGMENT_DIR,
    USER_IDS,
    model_dir,
)
from winnow.bundle.manifest import BundleInfo, verify_bundle
from winnow.core.errors import BundleError
from winnow.core.ids import IdMap
from winnow.features import FeatureCatalog, FeatureSpec
from winnow.index.base import VectorIndex
from winnow.models.base import Recommender
from winnow.models.coldstart import SegmentPopularity
from winnow.models.ranker import LambdaRanker


@dataclass
class Bundle:
    """A verified, loaded bundle (what the server builds a pipeline from).

    ``models``: name -> Recommender for every name in the manifest's "models" (models/<name>/);
    ``index``: the ANN index over the ALS item factors (index/), None when absent."""

    info: BundleInfo
    user_ids: IdMap
    item_ids: IdMap
    category_names: list[str]
    items: dict[str, np.ndarray]
    models: dict[str, Recommender] = field(default_factory=dict)
    index: VectorIndex | None = None

    @property
    def version(self) -> str:
        return self.info.version

    @property
    def path(self) -> Path:
        return self.info.path

    @property
    def files(self) -> dict[str, str]:
        """The verified manifest's {relative path: sha256}."""
        files = self.info.manifest.get("files")
        return dict(files) if isinstance(files, dict) else {}

    @property
    def id_maps(self) -> dict[str, IdMap]:
        """This bundle's id maps keyed by kind and their file's sha256 (``load_bundle(reuse=)``);
        an ids file the manifest does not list is left out."""
        files = self.files
        return {f"{kind}:{files[name]}": ids for kind, name, ids in
                (("user", USER_IDS, self.user_ids), ("item", ITEM_IDS, self.item_ids)) if name in files}


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def load_bundle(path: str | Path, *, reuse: Mapping[str, IdMap] | None = None) -> Bundle:
    """Verify and load a bundle (ids, item arrays, models, index); BundleError if anything is off.

    ``reuse``: id maps already loaded, keyed like ``Bundle.id_maps`` (kind and the verified
    sha256 of the file they were read from); an ids file found there is copied
    (``IdMap.copy``) instead of decoded and rebuilt -- a retrained challenger usually has its
    champion's ids files, and at 10^6 items the rebuild holds the GIL ~100 ms at a time."""
    from winnow.index import load_index
    from winnow.models.registry import load_model

    d = Path(path)
    manifest = verify_bundle(d)
    listed = manifest.get("files")
    files: dict[str, str] = listed if isinstance(listed, dict) else {}

    def ids(kind: str, name: str) -> IdMap:
        known = (reuse or {}).get(f"{kind}:{files.get(name)}")
        return known.copy() if known is not None else IdMap.from_list(kind, _read_json(d / name))

    try:
        user_ids = ids("user", USER_IDS)
        item_ids = ids("item", ITEM_IDS)
        cats = _read_json(d / CATEGORIES)
        with np.load(d / ITEMS, allow_pickle=False) as z:
            items = {k: z[k] for k in ITEM_ARRAYS}
        for k, arr in items.items():
            if len(arr) != len(item_ids):
                raise BundleError(f"{d}/{ITEMS}: {k} has {len(arr)} rows for {len(item_ids)} items")
        models = {name: load_model(model_dir(d, name)) for name in manifest.get("models", [])}
        index = load_index(d / INDEX_DIR) if (d / INDEX_DIR).is_dir() else None
    except BundleError:
        raise
    except (OSError, ValueError, KeyError) as exc:
        raise BundleError(f"{d}: cannot load bundle: {exc}") from None
    info = BundleInfo(manifest["version"], d, manifest)
    return Bundle(info, user_ids, item_ids, list(cats), items, models, index)


def has_ranker(bundle_dir: str | Path) -> bool:
    """True when the bundle holds a served ranker (ranker/ranker.txt)."""
    return (Path(bundle_dir) / RANKER_DIR / RANKER_FILES[0]).is_file()


def ranker_digests(files: dict[str, str] | None) -> tuple[str, ...] | None:
    """sha256 of ranker/{ranker.txt, ranker.json, features.npz} from a verified manifest's file
    list (equal digests = the same ranker); None when any is missing."""
    names = [f"{RANKER_DIR}/{n}" for n in RANKER_FILES]
    return tuple(files[n] for n in names) if files and all(n in files for n in names) else None


def feature_state_digests(files: dict[str, str] | None) -> tuple[str, ...] | None:
    """sha256 of what the ranker's online feature state depends on besides the store's events:
    the feature spec (ranker/ranker.json), the feature catalog (ranker/features.npz) and the
    id maps; None when any is missing."""
    names = [f"{RANKER_DIR}/ranker.json", f"{RANKER_DIR}/features.npz", USER_IDS, ITEM_IDS]
    return tuple(files[n] for n in names) if files and all(n in files for n in names) else None


def load_ranker(bundle_dir: str | Path) -> tuple[LambdaRanker, FeatureCatalog] | None:
    """The served ranker (LightGBM model + feature spec) and its feature catalog; None when the
    bundle has no ranker. Not compiled (the caller decides; serving compiles with lleaves)."""
    if not has_ranker(bundle_dir):
        return None
    d = Path(bundle_dir) / RANKER_DIR
    return LambdaRanker.load(d), FeatureCatalog.load(d / RANKER_FILES[2])


@dataclass(frozen=True)
class FeatureInputs:
    """What computing the served ranker's features point-in-time needs, without the models:
    the feature spec, the feature catalog and the id maps it is indexed by."""

    spec: FeatureSpec
    catalog: FeatureCatalog
    user_ids: IdMap
    item_ids: IdMap


def load_feature_inputs(bundle_dir: str | Path) -> FeatureInputs | None:
    """The served ranker's feature inputs (manifest and checksums verified first; the LightGBM
    model and the retrieval models are not read); None when the bundle has no ranker. For the
    drift monitor's live ranker-feature profile (winnow.evaluation.drift_features)."""
    if not has_ranker(bundle_dir):
        return None
    d = Path(bundle_dir)
    verify_bundle(d)
    try:
        meta = _read_json(d / RANKER_DIR / RANKER_FILES[1])
        spec = FeatureSpec.from_json(meta.get("feature_spec"), source=str(d / RANKER_DIR / RANKER_FILES[1]))
        return FeatureInputs(spec, FeatureCatalog.load(d / RANKER_DIR / RANKER_FILES[2]),
                             IdMap.from_list("user", _read_json(d / USER_IDS)),
                             IdMap.from_list("item", _read_json(d / ITEM_IDS)))
    except BundleError:
        raise
    except (OSError, ValueError, KeyError, AttributeError) as exc:
        raise BundleError(f"{d}: cannot load the ranker's feature inputs: {exc}") from None


def load_profile(bundle_dir: str | Path) -> dict[str, Any] | None:
    """The drift reference profile (profile.json, checksum verified), None when the bundle has
    none (written before profiles existed)."""
    d = Path(bundle_dir)
    if not (d / PROFILE).is_file():
        return None
    verify_bundle(d)
    profile: dict[str, Any] = _read_json(d / PROFILE)
    return profile


def load_segment(bundle_dir: str | Path) -> SegmentPopularity | None:
    """The segment-popularity model (segment/), None when the bundle has none."""
    d = Path(bundle_dir) / SEGMENT_DIR
    return SegmentPopularity.load(d) if d.is_dir() else None
