"""Two-tower options: per-item logit bias (saved, loaded, served), sqrt pooling, learning-rate
decay, linear towers (hidden_layers = 0).

Uses the tiny two-group world of test_two_tower.py (users of group A touch items 0..11, group B
items 12..23; items 24..27 are cold).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from winnow.core.config import IndexConfig
from winnow.core.errors import ConfigError
from winnow.models.two_tower import TwoTowerRecommender
from winnow.models.two_tower.serving import TwoTowerServing
from winnow.models.two_tower.towers import masked_mean
from winnow.models.two_tower.train import TrainSettings, make_optimizers

from tests.unit.test_two_tower import MASKED, N_ITEMS, N_USERS, N_WARM, item_group, world  # noqa: F401

BIAS = {**MASKED, "item_bias": True, "pooling": "sqrt", "lr_decay": 0.97, "epochs": 15, "patience": 15,
        "hidden_layers": 0}


@pytest.fixture(scope="module")
def fitted_bias(world) -> TwoTowerRecommender:  # noqa: F811
    inter, items, users = world
    return TwoTowerRecommender(**BIAS).with_side_info(items, users).fit(inter)


def test_bias_is_learned_and_part_of_the_score(fitted_bias: TwoTowerRecommender, world) -> None:  # noqa: F811
    m = fitted_bias
    assert m.net_.item_bias is not None and m.net_.item_bias.shape == (N_ITEMS + 1,)
    assert m.item_bias_.shape == (N_ITEMS,) and np.abs(m.item_bias_[:N_WARM]).max() > 1e-4
    users = np.arange(N_USERS)
    u = m._history_user_vectors(users)
    np.testing.assert_allclose(m._score(users), u @ m.item_vectors_.T + m.item_bias_, atol=1e-5)
    # the bias changes the scores: without it the scores differ
    assert not np.allclose(m._score(users), u @ m.item_vectors_.T, atol=1e-4)
    # cold items (no events) get the content-only bias (row 0), scaled by the temperature
    np.testing.assert_allclose(m.item_bias_[N_WARM:], m.config.temperature * float(m.net_.item_bias.detach()[0]), atol=1e-6)
    # still learns the groups
    inter = world[0]
    recs, _ = m.recommend(np.arange(70), 3, candidates=np.arange(N_WARM), exclude=inter.to_csr())
    assert (item_group(recs) == (np.arange(70) % 2)[:, None]).mean() >= 0.9


def test_bias_saved_in_state_dict_and_loaded(fitted_bias: TwoTowerRecommender, tmp_path: Path) -> None:
    from safetensors.torch import load_file

    from winnow.models.registry import load_model

    fitted_bias.save(tmp_path / "tt")
    weights = load_file(str(tmp_path / "tt" / "weights.safetensors"))
    np.testing.assert_allclose(weights["item_bias"].numpy(), fitted_bias.net_.item_bias.detach().numpy())
    loaded = load_model(tmp_path / "tt")
    assert loaded.config.item_bias and loaded.config.pooling == "sqrt" and loaded.config.lr_decay == 0.97
    assert loaded.config.hidden_layers == 0
    users = np.arange(N_USERS)
    np.testing.assert_allclose(loaded._score(users), fitted_bias._score(users), atol=1e-5)
    np.testing.assert_allclose(loaded.item_bias_, fitted_bias.item_bias_, atol=1e-6)


def test_index_vectors_reproduce_scores_and_serving(fitted_bias: TwoTowerRecommender) -> None:
    m = fitted_bias
    vec = m.user_vector(history=[0, 1, 2])
    rows = m.index_vectors()
    assert rows.shape == (N_ITEMS, m.config.dim + 1)
    np.testing.assert_allclose(rows @ m.index_query(vec), m.item_vectors_ @ vec + m.item_bias_, atol=1e-5)
    serving = TwoTowerServing.build(m, IndexConfig(backend="exact"))
    ids, _ = serving.index.search(m.index_query(vec)[None, :], 5)
    np.testing.assert_array_equal(ids[0], np.argsort(-(rows @ m.index_query(vec)), kind="stable")[:5])
    new = pd.DataFrame({"item_id": ["new"], "title": ["alpine hiking new"], "text": [""], "categories": [["catA"]],
                        "creator": [""], "created_at": pd.array([None], dtype="Int64")})
    serving.add_items([N_ITEMS], new)
    assert serving.content_vector(N_ITEMS).shape == (m.config.dim,)
    ids, _ = serving.index.search(m.index_query(vec)[None, :], N_ITEMS + 1)
    assert N_ITEMS in ids[0]
    with pytest.raises(ConfigError, match="metric"):
        TwoTowerServing.build(m, IndexConfig(backend="exact", metric="cosine"))


def test_model_without_bias_has_plain_index_vectors(world) -> None:  # noqa: F811
    inter, items, users = world
    m = TwoTowerRecommender(**{**MASKED, "epochs": 2, "patience": 2}).with_side_info(items, users).fit(inter)
    assert m.net_.item_bias is None and "item_bias" not in m.net_.state_dict()
    assert (m.item_bias_ == 0).all() and m.index_vectors() is m.item_vectors_
    v = m.user_vector(history=[0])
    assert m.index_query(v).shape == v.shape


def test_sqrt_pooling() -> None:
    emb = torch.nn.Embedding(4, 1, padding_idx=0)
    with torch.no_grad():
        emb.weight[:, 0] = torch.tensor([0.0, 1.0, 2.0, 3.0])
    idx = torch.tensor([[1, 2, 3, 0]])
    w = torch.tensor([[1.0, 1.0, 2.0, 5.0]])  # the padding weight is ignored
    assert masked_mean(emb, idx, w).item() == pytest.approx((1 + 2 + 6) / 4)
    assert masked_mean(emb, idx, w, power=0.5).item() == pytest.approx((1 + 2 + 6) / 2)


def test_lr_decay_multiplies_learning_rates() -> None:
    from winnow.models.two_tower.towers import TwoTower

    net = TwoTower(n_items=5, n_categories=1, creator_buckets=4, text_dim=0, user_buckets=5, attr_buckets=5,
                   emb=4, hidden=4, dim=4, item_bias=True)
    st = TrainSettings(1, 2, 0.01, 0.1, 1.0, 0, 0.0, 0.0, 0.0, 0.0, 3, 1.0, 1, 0, False)
    opt = make_optimizers(net, st)
    opt.decay(0.5)
    opt.decay(0.5)
    assert [g["lr"] for o in opt.opts for g in o.param_groups] == pytest.approx([0.0025, 0.0025])
    assert TwoTowerRecommender(lr_decay=0.9)._settings().lr_decay == 0.9


def test_new_options_validated() -> None:
    from pydantic import ValidationError

    for bad in ({"pooling": "max"}, {"lr_decay": 0.0}, {"lr_decay": 1.5}, {"item_bias": "maybe"},
                {"hidden_layers": -1}, {"hidden_layers": 4}):
        with pytest.raises(ValidationError):
            TwoTowerRecommender(**bad)


def test_hidden_layers_shape_the_towers(fitted_bias: TwoTowerRecommender) -> None:
    from winnow.models.two_tower.towers import TwoTower

    # the fitted model has linear towers: one Linear map from the concatenated inputs
    for tower in (fitted_bias.net_.user, fitted_bias.net_.item):
        assert [type(m).__name__ for m in tower.mlp] == ["Linear"]
    kw = dict(n_items=5, n_categories=1, creator_buckets=4, text_dim=0, user_buckets=5, attr_buckets=5,
              emb=4, hidden=6, dim=3)
    assert [type(m).__name__ for m in TwoTower(**kw).user.mlp] == ["Linear", "ReLU", "Linear"]  # default
    deep = TwoTower(**kw, layers=2).item.mlp
    assert [type(m).__name__ for m in deep] == ["Linear", "ReLU", "Linear", "ReLU", "Linear"]
    assert deep[-1].out_features == 3 and deep[0].in_features == 6 * 4
