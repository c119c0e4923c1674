"""Content encoder: TF-IDF fallback, structured content, MiniLM (its cache: test_text_cache.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from winnow.core.errors import ConfigError, DataError
from winnow.models.content import (
    MiniLMEncoder,
    StructuredContent,
    TfidfSvdEncoder,
    age_buckets,
    item_texts,
    stable_hash,
)

DOCS = ["red running shoes for the marathon", "blue running shoes, lightweight", "trail running shoes",
        "chocolate cake recipe", "lemon cake with icing", "baking a chocolate cake at home",
        "history of the roman empire", "roman emperors and their wars"]


def test_tfidf_groups_similar_texts_and_round_trips(tmp_path: Path) -> None:
    enc = TfidfSvdEncoder(4, seed=0).fit(DOCS)
    v = enc.encode(DOCS)
    assert v.shape == (8, 4) and v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    sims = v @ v.T
    assert sims[0, 1] > sims[0, 3] and sims[3, 5] > sims[3, 6]
    enc.save(tmp_path / "t")
    assert not list(tmp_path.glob("**/*.pkl"))
    np.testing.assert_allclose(TfidfSvdEncoder.load(tmp_path / "t").encode(DOCS), v, atol=1e-6)


def test_tfidf_unfitted_raises() -> None:
    with pytest.raises(ConfigError, match="not fitted"):
        TfidfSvdEncoder(4).encode(["x"])


def test_structured_content() -> None:
    items = pd.DataFrame({"item_id": ["a", "b", "c"], "title": ["A", "", "C"], "text": ["x", "", ""],
                          "categories": [["Drama", "War"], [], ["Comedy", "Nope"]],
                          "creator": ["Kubrick", "", "Kubrick"],
                          "created_at": pd.array([0, None, 86_400 * 1000], dtype="Int64")})
    sc = StructuredContent(creator_buckets=64).fit(items.iloc[:2], reference=86_400 * 1001)
    assert sc.n_categories == 2  # Comedy unseen at fit time
    content = sc.transform(items, np.zeros((3, 2), np.float32))
    cats = content.categories.toarray()
    np.testing.assert_allclose(cats[0], [0.5, 0.5])
    assert cats[1].sum() == 0 and cats[2].sum() == 0
    assert content.creator[0] == content.creator[2] == stable_hash("Kubrick", 64) and content.creator[1] == 0
    assert content.age[1] == 0 and content.age[0] > content.age[2] >= 1
    assert StructuredContent.from_json(sc.to_json()).categories_ == sc.categories_
    assert item_texts(items) == ["A. x", "", "C"]
    with pytest.raises(DataError, match="text vectors"):
        sc.transform(items, np.zeros((2, 2), np.float32))


def test_age_buckets_unknown_is_zero() -> None:
    b = age_buckets(np.array([np.nan, 100.0, 100.0 - 86_400 * 64]), 100)
    assert b[0] == 0 and b[1] == 1 and b[2] == 7


def test_minilm_offline_semantics() -> None:
    v = MiniLMEncoder().encode(["running shoes", "sneakers for jogging", "chocolate cake"])
    assert v.shape == (3, 384)
    assert v[0] @ v[1] > v[0] @ v[2] + 0.1


def test_minilm_variants_are_close_to_fp32_and_keyed_apart() -> None:
    texts = ["running shoes", "sneakers for jogging", "chocolate cake", "a long " + "description " * 200]
    ref = MiniLMEncoder().encode(texts)
    int8 = MiniLMEncoder(precision="int8")
    capped = MiniLMEncoder(max_tokens=32)
    cos_q = (int8.encode(texts) * ref).sum(axis=1)
    cos_c = (capped.encode(texts) * ref).sum(axis=1)
    assert (cos_q > 0.9).all() and (cos_q < 1 - 1e-6).any()  # close, and not the same vectors
    np.testing.assert_allclose(cos_c[:3], 1.0, atol=1e-5)  # short texts: the cap changes nothing
    assert cos_c[3] < 1 - 1e-4  # the long text was cut at 32 word pieces
    ids = {MiniLMEncoder().cache_id, int8.cache_id, capped.cache_id}
    assert len(ids) == 3 and TfidfSvdEncoder.cache_id is None
    with pytest.raises(ConfigError, match="precision"):
        MiniLMEncoder(precision="fp16")  # type: ignore[arg-type]
