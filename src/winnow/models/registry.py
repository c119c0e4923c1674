"""Retrieval models by name: build one from the typed config, or load a saved one.

Names: "popularity", "popularity_recent", "itemitem", "als", "bpr", "ease", "rp3beta", "userknn", "sequence", "two_tower". A saved model is a
directory with ``model.json`` (its "model" field is the name) and ``arrays.npz``.
"""

from __future__ import annotations

import json
from pathlib import Path

from winnow.core.config import WinnowConfig
from winnow.core.errors import BundleError
from winnow.core.registry import Registry
from winnow.models.base import Recommender

# name -> "module:class", imported on first use (winnow.core.registry.Registry): two_tower pulls
# in torch (~1 s, hundreds of MB), which a service or CLI run that never uses it should not pay
# for. Each class declares its own ``name`` and its ``[models.<section>]`` (``section``; default:
# its name), so a model is registered here once.
MODELS = Registry("model", {
    "popularity": "winnow.models.popularity:PopularityRecommender",
    "popularity_recent": "winnow.models.popularity:RecentPopularityRecommender",
    "itemitem": "winnow.models.itemitem:ItemItemRecommender",
    "als": "winnow.models.als:ALSRecommender",
    "bpr": "winnow.models.bpr:BPRRecommender",
    "ease": "winnow.models.ease:EASERecommender",
    "rp3beta": "winnow.models.rp3beta:RP3betaRecommender",
    "userknn": "winnow.models.userknn:UserKNNRecommender",
    "sequence": "winnow.models.sequence:SequenceRecommender",
    "two_tower": "winnow.models.two_tower:TwoTowerRecommender",
})


def model_class(name: str) -> type[Recommender]:
    """The class registered under ``name``; ConfigError naming it and the valid names otherwise."""
    cls: type[Recommender] = MODELS.get(name)
    assert cls.name == name, f"model {name!r} is registered as {name!r} but calls itself {cls.name!r}"
    return cls


def model_section(name: str) -> str:
    """The ``[models.<section>]`` that parameterises model ``name``."""
    return getattr(model_class(name), "section", None) or name


def build_model(name: str, config: WinnowConfig) -> Recommender:
    """An unfitted model named ``name`` with parameters from ``config.models.<section>``."""
    cls = model_class(name)
    section = getattr(config.models, model_section(name))
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
    if not isinstance(name, str) or name not in MODELS:
        raise BundleError(f"{meta_path}: {MODELS.unknown(name)}")
    return model_class(name).load(d)
