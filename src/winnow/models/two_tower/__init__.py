"""Two-tower retrieval (PyTorch, CPU): towers.py (modules), train.py (sampled softmax with logQ
correction, early stopping), model.py (the ``two_tower`` Recommender, cold-item blending)."""

from winnow.models.two_tower.model import TwoTowerRecommender, blend_item_vectors

__all__ = ["TwoTowerRecommender", "blend_item_vectors"]
