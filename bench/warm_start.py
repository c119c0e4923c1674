"""Warm vs cold fits of ALS and the two-tower on a grown catalog: fit time and held-out quality.

    python bench/warm_start.py --json bench/results/warm_start.json
        [--datasets ml-latest-small,synthetic] [--two-tower [--tuned]] [--sweep 1,2,3,5,8]
        [--epochs-sweep 3,5,10] [--merge]

Split (winnow.evaluation.warm_split.grown_split), by event time: the "previous" bundle trained on
the first ``--previous`` share of events (synthetic: minus every event of ``--new-items`` of the
catalog, which it has never seen); the new fit trains on every event before ``--current`` (the
full catalog, new id maps); recall/NDCG@10 on the events after it (users with events on both
sides, training items excluded). Cold = the configured iterations / epochs from scratch, seeds
0..``--seeds``-1 (their spread is the noise band); warm = the component's warm start
(winnow.components: FitContext.warm) from the previous model with ``warm_iterations`` /
``warm_epochs``. All runs of a dataset run side by side in one process; the load average is
recorded before and after each run (the machine is shared).

``--tuned``: the two-tower with config/tuned/two_tower_<dataset>.json (as bench/two_tower.py).
``--merge``: add this run to ``--json``'s list of runs ("invocations") instead of replacing it.

Synthetic world: ``generate_world(--users, --items, --events, seed=5)`` (what
``winnow import synthetic --users 100000 --items 100000 --events 2000000 --seed 5`` imports).
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

from winnow.bundle.warm import WarmSource  # noqa: E402
from winnow.components import FitContext, component  # noqa: E402
from winnow.core.config import WinnowConfig, load_config  # noqa: E402
from winnow.data.interactions import Dataset  # noqa: E402
from winnow.engine import LocalEngine  # noqa: E402
from winnow.evaluation.datasets import read_directory  # noqa: E402
from winnow.evaluation.warm_split import GrownSplit, grown_split, holdout_metrics  # noqa: E402

DATA = Path(os.environ.get("WINNOW_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def _with(cfg: WinnowConfig, section: str, **update: Any) -> WinnowConfig:
    models = cfg.models.model_copy(update={section: getattr(cfg.models, section).model_copy(update=update)})
    return cfg.model_copy(update={"models": models})


def _fit(cfg: WinnowConfig, split: GrownSplit, kind: str, warm: WarmSource | None) -> dict[str, Any]:
    """One fit through the component (as `winnow train` runs it), timed and scored."""
    ds = Dataset("current", split.train, split.current.user_ids, split.current.item_ids,
                 split.current.items, split.current.users)
    ctx = FitContext(cfg, ds, LocalEngine(), warm=warm)
    load0 = os.getloadavg()[0]
    t, c = time.perf_counter(), time.process_time()
    model = component(kind).fit(ctx)
    wall, cpu = time.perf_counter() - t, time.process_time() - c
    quality = holdout_metrics(model, split.train, split.test)
    rec = ctx.warm_reports[kind]
    return {"mode": rec["mode"], "fit_s": round(wall, 2), "fit_cpu_s": round(cpu, 2),
            "iterations": rec.get("iterations"), "epochs": rec.get("epochs"),
            "recall@10": round(quality["recall"], 5), "ndcg@10": round(quality["ndcg"], 5),
            "users": quality["users"], "carried": {k: rec[k] for k in ("users", "items") if k in rec},
            "loadavg_1m": [round(load0, 2), round(os.getloadavg()[0], 2)]}


def _compare(cfg: WinnowConfig, split: GrownSplit, kind: str, section: str, knob: str,
             sweep: list[int], seeds: int, say) -> dict[str, Any]:
    """The previous model, cold fits (``seeds`` seeds) and warm fits for each ``knob`` value."""
    t = time.perf_counter()
    prev_ctx = FitContext(cfg, split.previous, LocalEngine())
    previous = component(kind).fit(prev_ctx)
    say(f"  {kind}: previous model fitted in {time.perf_counter() - t:.1f} s")
    warm = WarmSource("previous", Path("."), "", {}, split.previous.user_ids, split.previous.item_ids,
                      {kind: previous})
    runs: list[dict[str, Any]] = []
    for seed in range(seeds):
        runs.append({"run": f"cold seed {seed}", **_fit(_with(cfg, section, seed=seed), split, kind, None)})
        say(f"  {kind}: {runs[-1]}")
    for value in sweep:
        runs.append({"run": f"warm {knob}={value}", **_fit(_with(cfg, section, **{knob: value}), split, kind, warm)})
        say(f"  {kind}: {runs[-1]}")
    cold = [r for r in runs if r["mode"] == "cold"]
    band = {m: [min(r[m] for r in cold), max(r[m] for r in cold)] for m in ("recall@10", "ndcg@10")}
    return {"runs": runs, "cold_band": band, "cold_mean_fit_s": round(float(np.mean([r["fit_s"] for r in cold])), 2)}


def _split(name: str, args: argparse.Namespace, cfg: WinnowConfig) -> GrownSplit:
    if name == "synthetic":
        from winnow.data.synthetic import generate_world

        world = generate_world(args.users, args.items, args.events, seed=5)
        return grown_split(world.events, world.items, world.users, cfg.events, previous=args.previous,
                           current=args.current, new_items=args.new_items)
    imp = read_directory(DATA / name)
    return grown_split(imp.events, imp.items, imp.users, cfg.events, previous=args.previous, current=args.current)


def _table(results: dict[str, Any]) -> None:
    print(f"\n{'dataset':18s}{'model':10s}{'run':22s}{'fit s':>8s}{'iters':>7s}{'recall@10':>11s}{'ndcg@10':>9s}"
          f"{'load':>12s}")
    for ds, by_model in results["datasets"].items():
        for model, res in by_model.items():
            if model in ("split", "two_tower_params"):
                continue
            for r in res["runs"]:
                its = r["iterations"] if r["iterations"] is not None else r["epochs"]
                print(f"{ds:18s}{model:10s}{r['run']:22s}{r['fit_s']:>8.2f}{its!s:>7s}{r['recall@10']:>11.4f}"
                      f"{r['ndcg@10']:>9.4f}{'/'.join(map(str, r['loadavg_1m'])):>12s}")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", type=Path, default=Path(__file__).resolve().parent / "results" / "warm_start.json")
    ap.add_argument("--datasets", default="ml-latest-small,synthetic")
    ap.add_argument("--two-tower", action="store_true", help="also the two-tower (ml-latest-small only)")
    ap.add_argument("--sweep", default="1,2,3,5,8", help="ALS warm_iterations to measure")
    ap.add_argument("--epochs-sweep", default="3,5,10", help="two-tower warm_epochs to measure")
    ap.add_argument("--seeds", type=int, default=3, help="cold fits (seeds 0..n-1): the noise band")
    ap.add_argument("--previous", type=float, default=0.9)
    ap.add_argument("--current", type=float, default=0.95)
    ap.add_argument("--new-items", type=float, default=0.05, help="synthetic: share of items new to the previous fit")
    ap.add_argument("--users", type=int, default=100_000)
    ap.add_argument("--items", type=int, default=100_000)
    ap.add_argument("--events", type=int, default=2_000_000)
    ap.add_argument("--tuned", action="store_true", help="two-tower: config/tuned/two_tower_<dataset>.json")
    ap.add_argument("--merge", action="store_true", help="append this run to --json's invocations")
    ap.add_argument("--text", default="tfidf", choices=["tfidf", "minilm", "none"], help="two-tower text backend")
    args = ap.parse_args(argv)
    cfg = load_config(home=Path("/tmp/winnow-bench-warm"))
    cfg = _with(cfg, "two_tower", text_backend=args.text)
    out: dict[str, Any] = {"args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
                           "cpus": os.cpu_count(), "loadavg_start": os.getloadavg(),
                           "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "datasets": {}}
    for name in args.datasets.split(","):
        t = time.perf_counter()
        split = _split(name, args, cfg)
        print(f"{name}: split in {time.perf_counter() - t:.1f} s: previous {len(split.previous.interactions):,} events "
              f"{len(split.previous.item_ids):,} items; new training {len(split.train):,} events "
              f"{len(split.current.item_ids):,} items; test {len(split.test):,} events", flush=True)
        res: dict[str, Any] = {"split": {"previous_events": len(split.previous.interactions),
                                         "previous_items": len(split.previous.item_ids),
                                         "previous_users": len(split.previous.user_ids),
                                         "train_events": len(split.train), "items": len(split.current.item_ids),
                                         "users": len(split.current.user_ids), "test_events": len(split.test),
                                         "cuts": list(split.cuts)}}
        res["als"] = _compare(cfg, split, "als", "als", "warm_iterations",
                              [int(x) for x in args.sweep.split(",")], args.seeds, lambda m: print(m, flush=True))
        if args.two_tower and name != "synthetic":
            tt_cfg = cfg
            if args.tuned:
                from tune_two_tower import tuned_params

                tt_cfg = _with(cfg, "two_tower", **{**tuned_params(name), "text_backend": args.text})
                res["two_tower_params"] = tt_cfg.models.two_tower.model_dump()
            res["two_tower"] = _compare(tt_cfg, split, "two_tower", "two_tower", "warm_epochs",
                                        [int(x) for x in args.epochs_sweep.split(",")], max(1, args.seeds - 1),
                                        lambda m: print(m, flush=True))
        out["datasets"][name] = res
        _write(args, out)  # partial results survive a stop
    out["loadavg_end"] = os.getloadavg()
    _write(args, out)
    _table(out)


def _write(args: argparse.Namespace, out: dict[str, Any]) -> None:
    args.json.parent.mkdir(parents=True, exist_ok=True)
    doc: Any = out
    if args.merge and args.json.is_file():
        old = json.loads(args.json.read_text(encoding="utf-8"))
        runs = [r for r in old.get("invocations", [old]) if r.get("started") != out["started"]]
        doc = {"invocations": [*runs, out]}
    args.json.write_text(json.dumps(doc, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
