"""``bench/scale.py --part batch``: batch work local vs the Ray engine (see scale.py's docstring).

Kept apart from scale.py for size; run it through scale.py:

    nice -n 5 python bench/scale.py --part batch   # -> bench/results/scale_batch.json
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np


def part_batch(args: argparse.Namespace, *, env: Callable[[], dict], clock: Callable) -> dict:
    """The batch part of bench/scale.py (see its docstring); ``env``/``clock`` are its helpers."""
    _env, _clock = env, clock
    import csv

    import ray
    import torch

    from winnow.core.config import load_config
    from winnow.data.interactions import Interactions
    from winnow.data.synthetic import generate_world
    from winnow.data.training_data import dataset_from_frames
    from winnow.engine import open_engine
    from winnow.engine.ray_batch import ray_item_vectors
    from winnow.models.two_tower import TwoTowerRecommender
    from winnow.models.two_tower.train import item_vectors
    from winnow.training.batch import batch_recommend

    home = Path(tempfile.mkdtemp(prefix="winnow-scale-batch-"))
    # [coldstart] items off: items without events would add a full two-tower fit to both runs
    cfg = load_config(home, overrides={"training": {"num_workers": args.workers, "partitions": 4 * args.workers},
                                       "models": {"als": {"iterations": args.als_iterations}},
                                       "coldstart": {"items": False}})
    out: dict = {"part": "batch", "workers": args.workers, "env_start": _env(), "batch_recommend": {},
                 "item_tower": {}}
    b = out["batch_recommend"]
    clock = _clock()
    world = generate_world(args.batch_users, args.batch_items, args.batch_events, seed=0)
    ds = dataset_from_frames(world.events, world.items, world.users, cfg.events, name="scale-batch")
    b.update(users=len(ds.user_ids), items=len(ds.item_ids), events=len(ds.interactions), k=20,
             model=args.batch_model, world_s=clock()[0])
    del world
    print(f"batch world: {b['users']} users x {b['items']} items x {b['events']} events", flush=True)
    files = {}
    ray.init(num_cpus=args.workers, include_dashboard=False, log_to_driver=False)  # started once, timed apart
    try:
        for name in ("local", "ray"):
            files[name] = home / f"{name}.csv"
            clock = _clock()
            summary = batch_recommend(ds, cfg, k=20, out=files[name], model_name=args.batch_model, engine=name)
            b[f"{name}_s"], b[f"{name}_driver_cpu_s"] = clock()
            b["rows"] = summary.rows
            print(f"batch-recommend {name}: {b[f'{name}_s']} s ({summary.rows} rows)", flush=True)
        rows = {n: list(csv.reader(open(f, newline="", encoding="utf-8"))) for n, f in files.items()}
        b["same_rows"] = [r[:3] for r in rows["local"]] == [r[:3] for r in rows["ray"]]
        b["scores_allclose"] = bool(np.allclose([float(r[3]) for r in rows["local"][1:]],
                                                [float(r[3]) for r in rows["ray"][1:]], rtol=1e-5, atol=1e-6))
        del rows

        # item-tower scoring at --tower-items: a two-tower fitted on few events (the tower's cost
        # is per item, not per event), text_backend none
        t = out["item_tower"]
        clock = _clock()
        world = generate_world(2000, args.tower_items, args.tower_events, seed=1)
        inter = Interactions.from_arrays(world.events["user_id"].str[1:].astype(np.int64).to_numpy(),
                                         world.events["item_id"].str[1:].astype(np.int64).to_numpy(),
                                         timestamp=world.events["timestamp"].to_numpy(),
                                         n_users=2000, n_items=args.tower_items)
        tt_cfg = cfg.models.two_tower.model_copy(update={"epochs": 1, "text_backend": "none", "refit": False,
                                                         "validation_users": 100})
        model = TwoTowerRecommender.from_config(tt_cfg).with_side_info(world.items, None).fit(inter)
        t.update(items=args.tower_items, fit_events=len(inter), dim=int(model.item_vectors_.shape[1]),
                 setup_s=clock()[0])
        del world
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        tensors = model.table_.tensors()
        clock = _clock()
        local = (item_vectors(model.net_, tensors, content_only=False), item_vectors(model.net_, tensors, content_only=True))
        t["local_1thread_s"] = clock()[0]
        torch.set_num_threads(threads)
        with open_engine(cfg, "ray") as eng:
            for run in (1, 2):
                clock = _clock()
                got = ray_item_vectors(model, engine=eng)
                t[f"ray_s_run{run}"] = clock()[0]
        t["partitions"] = cfg.training.partitions
        t["allclose"] = bool(np.allclose(got[0], local[0], rtol=1e-5, atol=1e-6)
                             and np.allclose(got[1], local[1], rtol=1e-5, atol=1e-6))
        print(f"item tower @ {args.tower_items}: local {t['local_1thread_s']} s, ray {t['ray_s_run1']} / "
              f"{t['ray_s_run2']} s (allclose {t['allclose']})", flush=True)
    finally:
        ray.shutdown()
        import shutil

        shutil.rmtree(home, ignore_errors=True)
    out["env_end"] = _env()
    return out


def table_batch(r: dict) -> str:
    b, t = r["batch_recommend"], r["item_tower"]
    return "\n".join([
        f"batch @ {b['users']:,} users x {b['items']:,} items x {b['events']:,} events, k={b['k']}, "
        f"model {b['model']}, Ray workers = {r['workers']} (load avg {r['env_start']['loadavg'][0]:.1f})",
        f"  batch-recommend end to end: local {b['local_s']} s, ray {b['ray_s']} s "
        f"(same rows {b['same_rows']}, scores allclose {b['scores_allclose']})",
        f"  item tower @ {t['items']:,} items x dim {t['dim']}: local (1 thread) {t['local_1thread_s']} s, "
        f"ray {t['ray_s_run1']} s / {t['ray_s_run2']} s (allclose {t['allclose']})"])
