"""RP3beta and user-kNN against their formulas computed densely with numpy."""

from __future__ import annotations

import numpy as np
import pytest

from winnow.data.interactions import Interactions
from winnow.models.rp3beta import RP3betaRecommender
from winnow.models.userknn import UserKNNRecommender


@pytest.fixture(scope="module")
def data() -> tuple[Interactions, np.ndarray]:
    rng = np.random.default_rng(4)
    x = (rng.random((40, 25)) < 0.25).astype(np.float64)
    x[0, :] = 0.0
    x[0, 3] = 1.0  # a user with one item
    u, i = np.nonzero(x)
    inter = Interactions.from_arrays(u, i, timestamp=np.arange(len(u)) + 1_700_000_000,
                                     n_users=40, n_items=25)
    return inter, x


def _top_rows(m: np.ndarray, k: int) -> np.ndarray:
    out = np.zeros_like(m)
    for r in range(m.shape[0]):
        keep = np.argsort(-m[r], kind="stable")[:k]
        keep = keep[m[r, keep] != 0]
        out[r, keep] = m[r, keep]
    return out


@pytest.mark.parametrize(("alpha", "beta", "k"), [(1.0, 0.0, 25), (0.7, 0.6, 25), (0.5, 0.3, 4)])
def test_rp3beta_matches_dense_formula(data, alpha, beta, k) -> None:
    inter, x = data
    p_ui = x / np.maximum(x.sum(1, keepdims=True), 1)
    p_iu = x.T / np.maximum(x.T.sum(1, keepdims=True), 1)
    w = (p_iu ** alpha) @ (p_ui ** alpha)
    pop = x.sum(0)
    w = w / np.where(pop > 0, pop ** beta, np.inf)[None, :]
    np.fill_diagonal(w, 0.0)
    w = _top_rows(w, k)
    model = RP3betaRecommender(alpha=alpha, beta=beta, neighbours=k).fit(inter)
    np.testing.assert_allclose(model.similarity_.toarray(), w, rtol=1e-5, atol=1e-7)
    users = np.arange(40)
    np.testing.assert_allclose(model._score(users), x @ w, rtol=1e-5, atol=1e-6)


def test_rp3beta_beta_penalises_popular_items(data) -> None:
    inter, x = data
    pop = x.sum(0)
    plain = RP3betaRecommender(alpha=1.0, beta=0.0, neighbours=25).fit(inter)
    damped = RP3betaRecommender(alpha=1.0, beta=1.0, neighbours=25).fit(inter)
    ratio = damped.similarity_.toarray() / np.where(plain.similarity_.toarray() > 0, plain.similarity_.toarray(), np.nan)
    col = np.nanmean(ratio, axis=0)
    ok = ~np.isnan(col)
    np.testing.assert_allclose(col[ok], 1.0 / pop[ok], rtol=1e-5)


@pytest.mark.parametrize(("k", "shrink"), [(39, 0.0), (5, 2.0)])
def test_userknn_matches_dense_formula(data, k, shrink) -> None:
    inter, x = data
    n = x.sum(1)
    s = (x @ x.T) / (np.sqrt(np.outer(n, n)) + shrink)
    s = np.nan_to_num(s)
    np.fill_diagonal(s, 0.0)
    s = _top_rows(s, k)
    model = UserKNNRecommender(neighbours=k, shrinkage=shrink).fit(inter)
    np.testing.assert_allclose(model.similarity_.toarray(), s, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(model._score(np.arange(40)), s @ x, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(("cls", "kwargs", "field"), [
    (RP3betaRecommender, {"alpha": 0.0}, "alpha"), (RP3betaRecommender, {"beta": -1.0}, "beta"),
    (RP3betaRecommender, {"neighbours": 0}, "neighbours"),
    (UserKNNRecommender, {"neighbours": 0}, "neighbours"), (UserKNNRecommender, {"shrinkage": -1.0}, "shrinkage")])
def test_bad_parameters_are_named(cls, kwargs, field) -> None:
    with pytest.raises(ValueError, match=field):
        cls(**kwargs)
