"""EASE against the textbook formula, and its catalog-size guard."""

from __future__ import annotations

import numpy as np
import pytest

from winnow.core.errors import ConfigError
from winnow.data.interactions import Interactions
from winnow.models.ease import EASERecommender


def _random_world(seed: int = 0) -> Interactions:
    rng = np.random.default_rng(seed)
    x = rng.random((40, 15)) < 0.3
    u, i = np.nonzero(x)
    return Interactions.from_arrays(u, i, n_users=40, n_items=15)


def test_matches_closed_form() -> None:
    train = _random_world()
    m = EASERecommender(l2=3.0).fit(train)
    x = train.to_csr(binary=True).toarray().astype(np.float64)
    p = np.linalg.inv(x.T @ x + 3.0 * np.eye(15))
    b = np.eye(15) - p / np.diag(p)[None, :]
    np.fill_diagonal(b, 0.0)
    np.testing.assert_allclose(m.weights_, b, atol=1e-5)
    assert (np.diag(m.weights_) == 0).all()
    np.testing.assert_allclose(m._score(np.arange(40)), x @ b, atol=1e-4)


def test_refuses_large_catalog() -> None:
    train = _random_world()
    with pytest.raises(ConfigError, match=r"15 items: above models.ease.max_items=10"):
        EASERecommender(max_items=10).fit(train)


def test_bad_params() -> None:
    with pytest.raises(ValueError, match="l2 must be > 0"):
        EASERecommender(l2=0)
