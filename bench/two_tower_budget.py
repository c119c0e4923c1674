"""What the two-tower's training budget (``max_train_events``) does to quality and time.

    .venv/bin/python bench/two_tower_budget.py --datasets ml-100k,ml-latest-small --seeds 0 \
        --json bench/results/two_tower_budget.json

For each dataset's README protocol (bench/tune_two_tower.py PROTOCOLS; outer split seed(s)) the
two-tower is fitted on the train part with the default configuration (``--base`` JSON overrides
on top, e.g. text "none" for speed) in these arms, and scored on test (NDCG@10 and the rest,
bench/tune_two_tower.py ``fit_score``):

- ``unbounded``: ``max_train_events = 0`` (the stream before the budget existed);
- ``default``: the default budget -- on these worlds it does not bind, so its events seen and
  scores must equal ``unbounded`` (checked: the script fails otherwise);
- ``uniform@1/F``, ``recent@1/F`` for each ``--fractions`` F: a budget that binds, every epoch a
  1/F sample of the train events (uniform, or recency-weighted: two_tower/stream.py).

Each row keeps the fit's events seen (both runs), epochs, best epoch and wall seconds.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tune_two_tower import PROTOCOLS, fit_score  # noqa: E402

from winnow.core.config import load_config  # noqa: E402
from winnow.evaluation.datasets import load_named_dataset  # noqa: E402
from winnow.evaluation.runner import split_dataset  # noqa: E402


def arms(n_train: int, epochs: int, default_budget: int, fractions: list[int]) -> list[tuple[str, dict[str, Any]]]:
    """(name, overrides) of every arm for a train part of ``n_train`` events."""
    out: list[tuple[str, dict[str, Any]]] = [("unbounded", {"max_train_events": 0}),
                                             ("default", {"max_train_events": default_budget})]
    for f in fractions:
        budget = epochs * (n_train // f)
        out += [(f"uniform@1/{f}", {"max_train_events": budget, "budget_sampling": "uniform"}),
                (f"recent@1/{f}", {"max_train_events": budget, "budget_sampling": "recent"})]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", default="ml-100k,ml-latest-small")
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--fractions", default="4", help="binding budgets: every epoch sees 1/F of the stream")
    ap.add_argument("--base", default='{"text_backend": "none"}', help="JSON overrides of [models.two_tower]")
    ap.add_argument("--arms", default="", help="comma list of arm names to run (default: all)")
    ap.add_argument("--json", required=True)
    args = ap.parse_args()
    cfg = load_config(home=Path("/tmp/winnow-bench-home"))
    base = json.loads(args.base)
    tt = cfg.models.two_tower.model_copy(update=base)
    rows: list[dict[str, Any]] = []
    for name in args.datasets.split(","):
        ds = load_named_dataset(name, cfg)
        protocol, ratio = PROTOCOLS[name]
        for seed in (int(s) for s in args.seeds.split(",")):
            split = split_dataset(ds, protocol, seed=seed, ratio=ratio)
            n_train = len(split.train)
            by_arm: dict[str, dict[str, Any]] = {}
            for arm, over in arms(n_train, tt.epochs, cfg.models.two_tower.max_train_events,
                                  [int(f) for f in args.fractions.split(",")]):
                if args.arms and arm not in args.arms.split(","):
                    continue
                print(f"== {name} seed {seed} {arm} {over}", flush=True)
                t0 = time.perf_counter()
                metrics, fit_s, model = fit_score(cfg, ds, split, {**base, **over})
                h = model.history_
                row = {"dataset": name, "seed": seed, "arm": arm, "train_events": n_train, **over,
                       **metrics, "fit_s": round(fit_s, 1), "wall_s": round(time.perf_counter() - t0, 1),
                       "epochs": len(h["loss"]), "best_epoch": h["best_epoch"],
                       "events_seen": h["events_seen"], "refit_events_seen": h.get("refit_events_seen"),
                       "best_validation_ndcg": max(h["validation_ndcg"]) if h["validation_ndcg"] else None}
                by_arm[arm] = row
                rows.append(row)
                print(f"   ndcg@10 {row['ndcg@10']:.4f}  events seen {row['events_seen']:,} + "
                      f"{row['refit_events_seen']:,}  epochs {row['epochs']}  {row['fit_s']} s", flush=True)
            if not {"unbounded", "default"} <= set(by_arm):
                continue
            a, b = by_arm["unbounded"], by_arm["default"]
            same = all(a[k] == b[k] for k in ("ndcg@10", "events_seen", "refit_events_seen", "epochs"))
            print(f"   default budget unchanged from unbounded: {same}", flush=True)
            if not same:
                raise SystemExit(f"{name} seed {seed}: the default budget changed the fit: {a} vs {b}")
    Path(args.json).write_text(json.dumps({"base": base, "load": os.getloadavg(), "rows": rows}, indent=2))
    print("| dataset | seed | arm | NDCG@10 | events seen (fit + refit) | epochs | fit s |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['dataset']} | {r['seed']} | {r['arm']} | {r['ndcg@10']:.4f} | {r['events_seen']:,} + "
              f"{r['refit_events_seen']:,} | {r['epochs']} | {r['fit_s']} |")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
