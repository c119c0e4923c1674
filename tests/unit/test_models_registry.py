"""Model registry: names, config wiring, loading by manifest."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from winnow.core.config import load_config
from winnow.core.errors import BundleError, ConfigError
from winnow.data.interactions import Interactions
from winnow.models.registry import MODELS, build_model, load_model

NAMES = ["popularity", "popularity_recent", "itemitem", "als", "bpr", "ease", "rp3beta", "userknn", "sequence", "two_tower"]


def test_names() -> None:
    assert sorted(MODELS) == sorted(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_build_from_config(name: str, tmp_path: Path) -> None:
    cfg = load_config(tmp_path, environ={})
    model = build_model(name, cfg)
    assert model.name == name
    section = {"popularity_recent": "popularity"}.get(name, name)
    if section == "popularity":  # its mapping is tested in test_models_popularity
        return
    for key, value in getattr(cfg.models, section).model_dump().items():
        assert model.get_params()[key] == value


def test_config_values_reach_the_model(tmp_path: Path) -> None:
    cfg = load_config(tmp_path, environ={}, overrides={"models": {"als": {"factors": 7},
                                                                  "ease": {"l2": 12.5}}})
    assert build_model("als", cfg).get_params()["factors"] == 7
    assert build_model("ease", cfg).get_params()["l2"] == 12.5


def test_unknown_name_lists_valid_ones(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown model 'svd'.*als, bpr, ease"):
        build_model("svd", load_config(tmp_path, environ={}))


def test_load_errors(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="model.json is missing"):
        load_model(tmp_path)
    (tmp_path / "model.json").write_text(json.dumps({"model": "svd"}))
    with pytest.raises(BundleError, match="unknown model 'svd'"):
        load_model(tmp_path)


def test_load_dispatches_on_manifest(tmp_path: Path) -> None:
    train = Interactions.from_arrays(np.array([0, 0, 1, 2]), np.array([0, 1, 1, 2]))
    build_model("itemitem", load_config(tmp_path, environ={})).fit(train).save(tmp_path / "m")
    assert load_model(tmp_path / "m").name == "itemitem"
