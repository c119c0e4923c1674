"""Where ``winnow train`` runs the parts that grow with data: locally or on Ray.

``open_engine(config, name=None)`` returns a context manager with one interface for both:

- ``fit_two_tower(model, train) -> (fitted model, report)``: two-tower training (Ray: Ray Train
  data-parallel workers, winnow.engine.ray_train);
- ``offline_features(events, catalog, spec, lists) -> float32 [n_rows, n_features]``: the
  ranker's point-in-time features, what ``features.offline_features`` returns (Ray: over
  partitioned Parquet on Ray Data, winnow.engine.ray_features); training's funnel is given it;
- ``recommend_chunks(hook, chunks, k, exclude=, candidates=)``: batch-recommend's user chunks,
  yielded in order as (users, recs, scores) (Ray: Ray Data actors, winnow.engine.ray_batch);
- ``describe() -> dict``: what the bundle manifest records under "engine".

``name`` (e.g. ``winnow train --engine ray``) overrides ``[training] engine``; an unknown name,
a missing Ray install, an unreachable ``ray_address`` or too few cluster CPUs for
``num_workers`` are ConfigErrors raised before any work starts. The bundle format is the same.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from winnow.core.config import WinnowConfig
from winnow.data.interactions import Interactions
from winnow.engine.ray_engine import ENGINES, RayEngine, check_engine
from winnow.features.catalog import FeatureCatalog
from winnow.features.offline import Lists, offline_features
from winnow.features.spec import FeatureSpec

if TYPE_CHECKING:
    from winnow.models.two_tower import TwoTowerRecommender

__all__ = ["ENGINES", "LocalEngine", "RayEngine", "check_engine", "open_engine"]


class LocalEngine:
    """Everything in this process (the default)."""

    name = "local"

    def __enter__(self) -> LocalEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def close(self) -> None:
        return None

    def fit_two_tower(self, model: TwoTowerRecommender,
                      train: Interactions) -> tuple[TwoTowerRecommender, dict[str, Any]]:
        from winnow.models.two_tower.train import run_report

        model.fit(train)
        return model, {"workers": 1, "data_parallel": False,
                       **run_report(model.history_, model.config.max_train_events)}

    def offline_features(self, events: Interactions, catalog: FeatureCatalog, spec: FeatureSpec,
                         lists: Lists) -> np.ndarray:
        return offline_features(events, catalog, spec, lists)

    def recommend_chunks(self, hook: Any, chunks: list[Any], k: int, *, exclude: Any,
                         candidates: Any) -> Iterator[tuple[Any, Any, Any]]:
        for users in chunks:
            recs, scores = hook.recommend(users, k, exclude=exclude, candidates=candidates)
            yield users, recs, scores

    def describe(self) -> dict[str, Any]:
        return {"name": "local"}


def open_engine(config: WinnowConfig, name: str | None = None) -> LocalEngine | RayEngine:
    """The engine ``name`` (default ``config.training.engine``), not yet entered."""
    chosen = check_engine(name if name is not None else config.training.engine)
    if chosen == "ray":
        return RayEngine(config.training, home=config.home)
    return LocalEngine()
