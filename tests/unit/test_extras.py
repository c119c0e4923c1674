"""A configured feature whose pip extra is missing fails in load_config with the pip command
(modules made missing here by hiding them from importlib's finder; the packaging test sees
the real thing in a core-only venv)."""

from __future__ import annotations

import pytest

from winnow.core import extras
from winnow.core.config import extras_needed, load_config
from winnow.core.errors import ConfigError


@pytest.fixture
def without(monkeypatch):
    def hide(*modules: str) -> None:
        real = extras.find_spec
        monkeypatch.setattr(extras, "find_spec", lambda name: None if name in modules else real(name))
    return hide


@pytest.mark.parametrize("overrides, modules, command", [
    ({"store": {"url": "postgresql://u@h/db"}}, ("psycopg",), "pip install 'winnow[postgres]'"),
    ({"online": {"url": "redis://h:6379/0"}}, ("redis",), "pip install 'winnow[redis]'"),
    ({"training": {"engine": "ray"}}, ("ray",), "pip install 'winnow[ray]'"),
    ({"pipeline": {"sources": [{"name": "tt", "kind": "two_tower"}]}}, ("torch",), "pip install 'winnow[neural]'"),
    ({"pipeline": {"sources": [{"name": "c", "kind": "content"}]}}, ("sentence_transformers",),
     "pip install 'winnow[neural]'"),
])
def test_missing_extra_fails_at_start_up_naming_the_pip_command(tmp_path, without, overrides, modules, command):
    load_config(tmp_path, overrides=overrides)  # installed here: accepted
    without(*modules)
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path, overrides=overrides)
    assert command in str(info.value) and modules[0] in str(info.value)


def test_the_embedded_default_needs_no_extra(tmp_path, without):
    without("torch", "sentence_transformers", "psycopg", "psycopg_pool", "redis", "ray")
    cfg = load_config(tmp_path)
    assert extras_needed(cfg) == {}


def test_listing_every_component_does_not_load_torch() -> None:
    """Training and serving the default config look at every registered component (``always``,
    ``backfill``); a core install has no torch, so none of that may import it."""
    import subprocess
    import sys

    code = ("import sys\nfrom winnow.components.registry import component\n"
            "from winnow.core.registry import COMPONENTS\n"
            "kinds = [component(k).kind for k in COMPONENTS]\n"
            "assert 'two_tower' in kinds, kinds\n"
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_batch_recommend_with_cold_items_names_the_neural_extra_before_fitting(tmp_path, without) -> None:
    """Cold candidate items are scored by the two-tower: without torch, batch-recommend fails at
    once with the pip command (and works with [coldstart] items = false)."""
    import pandas as pd

    from winnow.data.training_data import dataset_from_frames
    from winnow.training.batch import batch_recommend

    events = pd.DataFrame({"user_id": ["u1", "u1", "u2", "u2", "u3"], "item_id": ["a", "b", "b", "c", "a"],
                           "event_type": "click", "timestamp": [1, 2, 3, 4, 5]})
    items = pd.DataFrame({"item_id": ["a", "b", "c", "cold"]})  # "cold" has no events
    cfg = load_config(tmp_path)
    dataset = dataset_from_frames(events, items, None, cfg.events, "t")
    without("torch")
    with pytest.raises(ConfigError) as info:
        batch_recommend(dataset, cfg, k=2, out=tmp_path / "recs.csv", model_name="popularity")
    assert "pip install 'winnow[neural]'" in str(info.value) and "1 candidate items" in str(info.value)
    assert not (tmp_path / "recs.csv").exists()
    off = load_config(tmp_path, overrides={"coldstart": {"items": False}})
    summary = batch_recommend(dataset_from_frames(events, items, None, off.events, "t"), off, k=2,
                              out=tmp_path / "recs.csv", model_name="popularity")
    assert summary.rows > 0 and (tmp_path / "recs.csv").exists()
