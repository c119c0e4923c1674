"""``RayEngine``: the engine interface (winnow.engine) over a Ray session.

A ``RaySession`` (winnow.engine.ray_session: configuration checks, start/join, shutdown) whose
jobs run on Ray: two-tower training on Ray Train (``ray_train``), batch-recommend's user chunks
and item-tower scoring on Ray Data (``ray_batch``), the ranker's point-in-time features on Ray
Data (``ray_features``). Those job modules import only the session, never this module, so the
engine package has no import cycle; they are imported when first used (Ray and torch load only
for a run that needs them).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp

from winnow.data.interactions import Interactions
from winnow.engine.ray_session import (
    ENGINES,
    RAY_PIN,
    RaySession,
    check_engine,
    import_ray,
)
from winnow.features.catalog import FeatureCatalog
from winnow.features.offline import Lists
from winnow.features.spec import FeatureSpec

if TYPE_CHECKING:
    from winnow.models.two_tower import TwoTowerRecommender

__all__ = ["ENGINES", "RAY_PIN", "RayEngine", "check_engine", "import_ray"]


class RayEngine(RaySession):
    """The parts of a training run that grow with data, on Ray (see the module docstring)."""

    def fit_two_tower(self, model: TwoTowerRecommender,
                      train: Interactions) -> tuple[TwoTowerRecommender, dict[str, Any]]:
        """Fit a two-tower model on Ray Train (winnow.engine.ray_train)."""
        from winnow.engine.ray_train import fit_two_tower_ray

        return fit_two_tower_ray(model, train, engine=self)

    def recommend_chunks(self, hook: Any, chunks: list[np.ndarray], k: int, *, exclude: sp.csr_matrix,
                         candidates: np.ndarray | None) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """batch-recommend's chunks on Ray Data, in order (winnow.engine.ray_batch)."""
        from winnow.engine.ray_batch import ray_recommend_chunks

        return ray_recommend_chunks(hook, chunks, k, exclude=exclude, candidates=candidates, engine=self)

    def offline_features(self, events: Interactions, catalog: FeatureCatalog, spec: FeatureSpec,
                         lists: Lists) -> np.ndarray:
        """``features.offline_features`` computed on Ray Data (winnow.engine.ray_features)."""
        from winnow.engine.ray_features import ray_offline_features

        return ray_offline_features(events, catalog, spec, lists, engine=self)
