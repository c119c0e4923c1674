"""Adding a component is one class + one registry line: a toy source registered from inside the
test is validated by config, fitted by ``winnow train``, written into the bundle, loaded by the
serving runtime and served over HTTP with its name on the items it proposed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from serve_harness import trained_home

from winnow.bundle import BundleContents, part_dir
from winnow.components import Component, FitContext, ServeContext, component, components_for
from winnow.core.config import load_config
from winnow.core.errors import ConfigError
from winnow.core.registry import COMPONENTS
from winnow.pipeline.sources import CandidateSource, RankedArraySource


class LeastPopular:
    """The toy's artefact: the external ids of the items with the fewest training events."""

    def __init__(self, item_ids: list[str]) -> None:
        self.item_ids = item_ids

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "items.json").write_text(json.dumps(self.item_ids), encoding="utf-8")


class ToyComponent(Component):
    """Proposes the least popular items (nothing else proposes them), in a fixed order."""

    kind = "toy"
    artefact = "toy"

    def fit(self, ctx: FitContext) -> LeastPopular:
        counts = np.bincount(ctx.dataset.interactions.item, minlength=len(ctx.dataset.item_ids))
        order = np.argsort(counts, kind="stable")[:30]
        return LeastPopular([ctx.dataset.item_ids.to_list()[i] for i in order])

    def save(self, artefact: Any, contents: BundleContents) -> None:
        contents.parts[self.artefact] = artefact

    def load(self, ctx: ServeContext) -> np.ndarray | None:
        if ctx.bundle is None:
            return None
        ids = json.loads((part_dir(ctx.bundle.path, "toy") / "items.json").read_text(encoding="utf-8"))
        return ctx.catalog.item_ids.encode(ids, missing=-1)

    def source(self, name: str, artefact: Any, ctx: ServeContext) -> CandidateSource:
        if artefact is None:
            raise ConfigError(self.missing(name, "the toy's item list"))
        score = np.zeros(len(ctx.catalog), np.float32)
        score[artefact[artefact >= 0]] = np.linspace(2.0, 1.0, int((artefact >= 0).sum()), dtype=np.float32)
        return RankedArraySource(name, self.kind, ctx.catalog, lambda c: np.pad(score, (0, len(c) - len(score))))


TOML = """
[security]
auth = false

[ranker]
enabled = false  # the blend ranker, so the toy's weight decides

[pipeline]
rules = ["exclude", "filter"]
cold_start_sources = ["odd_ones"]

[[pipeline.sources]]
name = "als"
kind = "als"
quota = 50
weight = 0.1

[[pipeline.sources]]
name = "odd_ones"
kind = "toy"
quota = 20
weight = 5.0
"""


@pytest.fixture
def toy() -> Any:
    COMPONENTS.register("toy", ToyComponent)
    yield component("toy")
    COMPONENTS.unregister("toy")


def test_an_unregistered_kind_is_refused_naming_it_and_the_known_ones(tmp_path: Path) -> None:
    (tmp_path / "winnow.toml").write_text(TOML)
    with pytest.raises(ConfigError) as err:
        load_config(tmp_path, environ={})
    msg = str(err.value)
    assert "'toy'" in msg and all(k in msg for k in ("als", "itemitem", "segment_popular", "two_tower"))


def test_a_component_registered_in_a_test_is_trained_bundled_and_served(tmp_path: Path, toy: Any) -> None:
    cfg, world, info = trained_home(tmp_path, TOML, n_users=150, n_items=200, n_events=6000, seed=3)
    assert toy in components_for(cfg)
    assert "components/toy/items.json" in info.manifest["files"]
    assert "toy" in info.manifest["sources"]
    from winnow.serving.app import create_app

    with TestClient(create_app(cfg)) as client:
        user = str(world.events["user_id"].iloc[0])
        body = client.get(f"/v1/users/{user}/recommendations", params={"k": 10}).json()
        toy_items = [it["item_id"] for it in body["items"] if "odd_ones" in it["sources"]]
        assert toy_items, body
        saved = json.loads((part_dir(info.path, "toy") / "items.json").read_text())
        assert set(toy_items) <= set(saved)
