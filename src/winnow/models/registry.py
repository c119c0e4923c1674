"""Retrieval models by name: build one from the typed config, or load a saved one.

Names: "popularity", "popularity_recent", "itemitem", "als", "bpr", "ease", "two_tower". A saved model is a
directory with ``model.json`` (its "model" field is the name) and ``arrays.npz``.
"""

from __future__ import annotations

import json
from pathlib import Path

from winnow.core.config import WinnowConfig
from winnow.core.errors import BundleError, ConfigError
from winnow.models.als import ALSRecommender
from winnow.models.base import Recommender
from winnow.models.bpr import BPRRecommender
from winnow.models.ease import EASERecommender
from winnow.models.itemitem import ItemItemRecommender
from winnow.models.popularity import PopularityRecommender, RecentPopularityRecommender
from winnow.models.two_tower import TwoTowerRecommender

MODELS: dict[str, type[Recommender]] = {
    cls.name: cls
    for cls in (PopularityRecommender, RecentPopularityRecommender, ItemItemRecommender,
                ALSRecommender, BPRRecommender, EASERecommender, TwoTowerRecommender)
}

# which [models.*] config section parameterises each model
_SECTION = {"popularity": "popularity", "popularity_recent": "popularity", "itemitem": "itemitem",
            "als": "als", "bpr": "bpr", "ease": "ease", "two_tower": "two_tower"}


def model_class(name: str) -> type[Recommender]:
    """The class registered under ``name``; ConfigError listing valid names otherwise."""
    try:
        return MODELS[name]
    except KeyError:
        raise ConfigError(f"unknown model {name!r}; valid names: {', '.join(sorted(MODELS))}") from None


def build_model(name: str, config: WinnowConfig) -> Recommender:
    """An unfitted model named ``name`` with parameters from ``config.models.<section>``."""
    cls = model_class(name)
    section = getattr(config.models, _SECTION[name])
    return cls.from_config(section)  # type: ignore[attr-defined]


def load_model(directory: str | Path) -> Recommender:
    """Load a model saved with ``Recommender.save``, dispatching on model.json's "model" name."""
    d = Path(directory)
    meta_path = d / "model.json"
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BundleError(f"no saved model at {d}: {meta_path} is missing") from None
    except json.JSONDecodeError as exc:
        raise BundleError(f"{meta_path}: invalid JSON: {exc}") from None
    name = meta.get("model") if isinstance(meta, dict) else None
    if name not in MODELS:
        raise BundleError(f"{meta_path}: unknown model {name!r}; valid names: {', '.join(sorted(MODELS))}")
    return MODELS[name].load(d)
