"""Two-tower retrieval (PyTorch, CPU): towers.py (modules), train.py (sampled softmax with logQ
correction, early stopping), model.py (the ``two_tower`` Recommender), encoding.py (attribute tokens, cold-item blending).

The names below load on first use (PEP 562), so the torch-free helpers (``encoding``, the
segment model's files in ``serving``) import without the ``neural`` extra installed."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from winnow.models.two_tower.encoding import blend_item_vectors
    from winnow.models.two_tower.model import TwoTowerRecommender

__all__ = ["TwoTowerRecommender", "blend_item_vectors"]


def __getattr__(name: str) -> Any:
    if name == "TwoTowerRecommender":
        from winnow.models.two_tower.model import TwoTowerRecommender

        return TwoTowerRecommender
    if name == "blend_item_vectors":
        from winnow.models.two_tower.encoding import blend_item_vectors

        return blend_item_vectors
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
