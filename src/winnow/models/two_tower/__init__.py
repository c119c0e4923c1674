"""Two-tower retrieval (PyTorch, CPU): towers.py (modules), train.py (sampled softmax with logQ
correction, early stopping), model.py (the ``two_tower`` Recommender), encoding.py (attribute tokens, cold-item blending)."""

from winnow.models.two_tower.encoding import blend_item_vectors
from winnow.models.two_tower.model import TwoTowerRecommender

__all__ = ["TwoTowerRecommender", "blend_item_vectors"]
