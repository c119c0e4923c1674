"""Write a bundle: the parts training produced, each in its place of the layout.

``BundleContents`` is what a bundle holds; ``fill_bundle(contents)`` returns the ``fill``
callback ``write_bundle`` runs inside the temporary directory (the manifest with every file's
sha256 is written after it, then the directory is renamed into place).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

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
    part_dir,
)
from winnow.core.ids import IdMap
from winnow.features import FeatureCatalog
from winnow.models.ranker import LambdaRanker


class Saveable(Protocol):
    """Anything that writes itself into a directory it may create (models, index, segment)."""

    def save(self, directory: Path) -> None: ...


@dataclass
class BundleContents:
    """Everything one bundle holds (see winnow.bundle.layout).

    items: the ITEM_ARRAYS, each [n_items]; models: name -> fitted Recommender (models/<name>/);
    index: ANN index over the ALS item factors; ranker: (LightGBM ranker, feature catalog) or
    None; segment: SegmentPopularity or None; parts: name -> a component's own artefact
    (components/<name>/); profile: the drift reference profile (JSON data) or None."""

    user_ids: IdMap
    item_ids: IdMap
    categories: list[str]
    items: dict[str, np.ndarray]
    models: dict[str, Saveable] = field(default_factory=dict)
    index: Saveable | None = None
    ranker: tuple[LambdaRanker, FeatureCatalog] | None = None
    segment: Saveable | None = None
    parts: dict[str, Saveable] = field(default_factory=dict)
    profile: dict[str, Any] | None = None


def save_ranker(ranker: LambdaRanker, catalog: FeatureCatalog, bundle_dir: Path) -> None:
    """ranker/ranker.txt + ranker/ranker.json (LambdaRanker.save) and ranker/features.npz."""
    d = Path(bundle_dir) / RANKER_DIR
    ranker.save(d)
    catalog.save(d / RANKER_FILES[2])


def write_contents(contents: BundleContents, d: Path) -> None:
    """Every file of ``contents`` under directory ``d`` (everything except manifest.json)."""
    missing = [k for k in ITEM_ARRAYS if k not in contents.items]
    if missing:
        raise ValueError(f"bundle item arrays missing: {missing}")
    (d / USER_IDS).write_text(json.dumps(contents.user_ids.to_list()), encoding="utf-8")
    (d / ITEM_IDS).write_text(json.dumps(contents.item_ids.to_list()), encoding="utf-8")
    (d / CATEGORIES).write_text(json.dumps(contents.categories), encoding="utf-8")
    arrays: dict[str, Any] = {k: contents.items[k] for k in ITEM_ARRAYS}
    np.savez(d / ITEMS, **arrays)
    for name, model in contents.models.items():
        model.save(model_dir(d, name))
    if contents.index is not None:
        contents.index.save(d / INDEX_DIR)
    if contents.ranker is not None:
        save_ranker(*contents.ranker, d)
    if contents.segment is not None:
        contents.segment.save(d / SEGMENT_DIR)
    for name, part in contents.parts.items():
        part.save(part_dir(d, name))
    if contents.profile is not None:
        (d / PROFILE).write_text(json.dumps(contents.profile, sort_keys=True), encoding="utf-8")


def fill_bundle(contents: BundleContents, then: Callable[[], None] | None = None) -> Callable[[Path], None]:
    """The ``fill`` for ``write_bundle``: writes ``contents``, then calls ``then()`` (e.g. to put
    the write stage's timings into the manifest, known only once the files are written)."""

    def fill(d: Path) -> None:
        write_contents(contents, d)
        if then is not None:
            then()

    return fill
