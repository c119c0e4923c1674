"""The two-tower's text backend choice: ``text_backend = "auto"`` is MiniLM up to
``text_auto_max_items`` items and TF-IDF above, says why in the fit's text report and saves the
backend it used; an explicit backend always wins."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from winnow.core.config import TwoTowerConfig
from winnow.data.interactions import Interactions
from winnow.models.two_tower import TwoTowerRecommender
from winnow.models.two_tower.text import resolve_backend

TINY = {"dim": 8, "embedding": 4, "hidden": 8, "epochs": 1, "patience": 1, "batch_size": 16, "history": 4,
        "user_buckets": 31, "attr_buckets": 11, "creator_buckets": 8, "text_dim": 4, "refit": False,
        "max_train_events": 0}


def test_auto_is_minilm_up_to_the_threshold_and_explicit_backends_win() -> None:
    auto = TwoTowerConfig(text_backend="auto", text_auto_max_items=1000)
    assert resolve_backend(auto, 1000)[0] == "minilm"
    backend, why = resolve_backend(auto, 1001)
    assert backend == "tfidf" and "1001 items > text_auto_max_items=1000" in (why or "")
    for explicit in ("minilm", "tfidf", "none"):
        assert resolve_backend(TwoTowerConfig(text_backend=explicit, text_auto_max_items=10), 10**6) == (explicit, None)


def test_auto_above_the_threshold_fits_tfidf_and_records_why(tmp_path: Path) -> None:
    n_items, n_users = 12, 20
    rng = np.random.default_rng(0)
    inter = Interactions.from_arrays(rng.integers(0, n_users, 200), rng.integers(0, n_items, 200),
                                     timestamp=np.arange(200) + 1_700_000_000, n_users=n_users, n_items=n_items)
    items = pd.DataFrame({"item_id": [str(i) for i in range(n_items)],
                          "title": [f"{'alpine hiking' if i % 2 else 'baking bread'} {i}" for i in range(n_items)],
                          "text": [""] * n_items})
    model = TwoTowerRecommender(**TINY, text_backend="auto", text_auto_max_items=5).with_side_info(items, None)
    model.fit(inter)
    assert model.config.text_backend == "tfidf" and model.table_.text.shape == (n_items, 4)
    assert model.text_report_ is not None and "12 items > text_auto_max_items=5" in model.text_report_["backend_choice"]
    model.save(tmp_path / "m")
    assert TwoTowerRecommender.load(tmp_path / "m").config.text_backend == "tfidf"  # what serving encodes with
