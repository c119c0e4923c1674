"""Batch work on the Ray engine (a local Ray instance, 2 CPUs / 2 workers) against the local run.

- item embeddings: the two-tower item tower scored on Ray Data over item partitions equals the
  local ``item_vectors`` (collaborative and content-only), and a model loaded with
  ``scored_two_tower(engine)`` has the local model's blended vectors and category centroids;
- batch-recommend: the same fitted funnel scores user chunks on Ray Data workers; the output
  CSV has the same rows (users, items, ranks, in the same order) and allclose scores, warm and
  cold users, cold candidate items included.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
import pytest

from winnow.core.config import load_config
from winnow.data.synthetic import generate_world
from winnow.data.training_data import dataset_from_frames

import ray  # noqa: E402  (requirements.txt pins ray[data,train]; a missing install fails)

TOML = """
[security]
auth = false

[ranker]
per_source = 30
cv_models = 1
num_boost_round = 30
early_stopping_rounds = 5

[models.als]
iterations = 5

[models.two_tower]
epochs = 1
text_backend = "tfidf"

[training]
num_workers = 2
partitions = 5
"""


@pytest.fixture(scope="module")
def ray_session():
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    started = not ray.is_initialized()
    if started:  # one Ray instance for the module; RayEngine joins it instead of starting its own
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    if started:
        ray.shutdown()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory):
    home = tmp_path_factory.mktemp("raybatch")
    (home / "winnow.toml").write_text(TOML)
    cfg = load_config(home)
    w = generate_world(400, 250, 12_000, seed=5)
    ev = w.events
    # cold items: 20 catalog items never seen in the events; cold users: 15 with attributes only
    cold_items = list(w.items["item_id"].iloc[-20:])
    ev = ev[~ev["item_id"].isin(cold_items)]
    ev = ev[~ev["user_id"].isin(list(w.users["user_id"].iloc[-15:]))]
    ds = dataset_from_frames(ev, w.items, w.users, cfg.events, name="world")
    return cfg, ds


def test_item_tower_on_ray_equals_local(world, ray_session, tmp_path: Path) -> None:
    from winnow.engine import open_engine
    from winnow.engine.ray_batch import ray_item_vectors, scored_two_tower
    from winnow.models.two_tower import TwoTowerRecommender

    cfg, ds = world
    model = TwoTowerRecommender.from_config(cfg.models.two_tower).with_side_info(ds.items, ds.users)
    model.fit(ds.interactions)
    model.save(tmp_path / "tt")
    local = TwoTowerRecommender.load(tmp_path / "tt")
    with open_engine(cfg, "ray") as eng:
        collab, content = ray_item_vectors(model, engine=eng)
        on_ray = scored_two_tower(eng).load(tmp_path / "tt")
    n = ds.interactions.n_items
    assert collab.shape == model.collab_vectors_.shape == (n, model.collab_vectors_.shape[1])
    assert np.isfinite(collab).all() and np.abs(collab).sum() > 0
    np.testing.assert_allclose(collab, model.collab_vectors_, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(content, model.content_vectors_, rtol=1e-5, atol=1e-6)
    assert not np.allclose(collab, content)  # the id path matters: a wrong offset would show
    assert on_ray.scoring_s > 0 and type(on_ray).engine is not None
    np.testing.assert_allclose(on_ray.item_vectors_, local.item_vectors_, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(on_ray.category_centroids_, local.category_centroids_, rtol=1e-5, atol=1e-6)
    users = np.arange(20)
    np.testing.assert_array_equal(on_ray.recommend(users, 10)[0], local.recommend(users, 10)[0])
    on_ray.save(tmp_path / "again")  # the ordinary two-tower format
    np.testing.assert_allclose(TwoTowerRecommender.load(tmp_path / "again").item_vectors_,
                               local.item_vectors_, rtol=1e-5, atol=1e-6)


def _read(path: Path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.reader(fh))


def test_batch_recommend_on_ray_equals_local(world, ray_session, tmp_path: Path) -> None:
    from winnow.training.batch import batch_recommend

    cfg, ds = world
    users = list(ds.user_ids.to_list())  # everyone in the users frame: warm and cold
    cands = np.arange(ds.interactions.n_items - 60, ds.interactions.n_items)  # 40 warm + 20 cold
    outs = {}
    for name in ("local", "ray"):
        outs[name] = tmp_path / f"{name}.csv"
        summary = batch_recommend(ds, cfg, k=8, out=outs[name], users=users, candidates=cands,
                                  batch_size=64, engine=name)
        assert summary.model == "stacked" and summary.cold_users >= 15
    local, on_ray = _read(outs["local"]), _read(outs["ray"])
    assert local[0] == on_ray[0] == ["user_id", "item_id", "rank", "score"]
    assert len(local) > 8 * 300
    assert [r[:3] for r in on_ray] == [r[:3] for r in local]  # same users, items, ranks, order
    np.testing.assert_allclose([float(r[3]) for r in on_ray[1:]], [float(r[3]) for r in local[1:]],
                               rtol=1e-5, atol=1e-6)
    cold_ids = set(ds.item_ids.decode(cands[-20:]))
    assert any(r[1] in cold_ids for r in local[1:])  # cold items were scored (two-tower path)
    assert not list(tmp_path.glob("*.tmp"))


def test_batch_recommend_unknown_engine_is_a_clear_error(world, tmp_path: Path) -> None:
    from winnow.core.errors import ConfigError
    from winnow.training.batch import batch_recommend

    cfg, ds = world
    with pytest.raises(ConfigError, match="unknown engine 'spark'"):
        batch_recommend(ds, cfg, k=5, out=tmp_path / "x.csv", engine="spark")
    assert not list(tmp_path.iterdir())  # validated before any work: nothing written
