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


def test_ease_is_bounded_by_the_memory_it_would_need(monkeypatch) -> None:
    """A catalog below max_items whose dense matrices would not fit the memory available is
    refused with both figures named, and the funnel's sources step aside with that reason."""
    import winnow.models.ease as ease
    from winnow.core.config import load_config
    from winnow.training.stacked import effective_sources

    assert ease.fit_bytes(20_000) == 20_000**2 * 28  # float64: 3 x 8 bytes + the float32 copy
    assert ease.fit_bytes(50_000) == 50_000**2 * 16  # float32 above FLOAT64_MAX_ITEMS
    monkeypatch.setattr(ease, "available_bytes", lambda: 8 * 2**30)
    why = ease.memory_refusal(30_000, 50_000)
    assert why is not None and "13.4 GiB" in why and "8.0 GiB available" in why
    assert ease.memory_refusal(10_000, 50_000) is None  # 2.6 GiB fits in 80% of 8 GiB
    rng = np.random.default_rng(0)
    big = Interactions.from_arrays(rng.integers(0, 50, 500), rng.integers(0, 30_000, 500),
                                   n_users=50, n_items=30_000)
    with pytest.raises(ConfigError, match="GiB available"):
        EASERecommender().fit(big)
    said: list[str] = []
    cfg = load_config("/nonexistent-winnow-home")
    assert "ease" in cfg.ranker.sources
    assert "ease" not in effective_sources(cfg, 30_000, said.append)
    assert said and "steps aside" in said[0]
    assert "ease" in effective_sources(cfg, 10_000, said.append)
