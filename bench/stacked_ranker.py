"""The offline stacked-ranker experiment (retrieval + LightGBM ranker, bulk-scored) against retrieval alone.

Not the funnel the service runs: that one is measured by bench/funnel.py (the README's funnel
figure). Here candidates from the retrieval models are ranked by ``training.stacked.StackedRanker``
in bulk, without the pipeline's quotas, backfill, rules or online features (until stop 17 this
was bench/funnel.py and its figure the README's; its result files keep their names,
bench/results/funnel_*.json).

    python bench/stacked_ranker.py --json bench/results/funnel.json [--datasets ml-100k,ml-latest-small,lastfm]
        [--seeds 0,1,2] [--data-dir ../shared/data] [--k 10]

Protocols: ml-100k per-user random 75/25, ml-latest-small global temporal 80/20, Last.fm
per-user random 80/20; training items excluded; only users with train and test items count.
The stacked ranker is fitted on the training part only (its ranker learns from inner splits of it; see
src/winnow/training/stacked.py); its retrieval sources, refitted on the whole training part, are
the "retrieval alone" rows of the same run, so every row of a seed shares one split. For the
temporal protocol the ranker's inner split is temporal too and every list's features are as of
one shared "now" (``as_of = global_last``). Writes JSON and prints a table (mean +- std).

``--validation`` scores on a part carved from each split's training part instead (per-user
random at the protocol's ratio, seed 100 + split seed; temporal: the ratio's time quantile), so
settings are chosen without looking at the test part; ``--ranker JSON`` overrides [ranker].
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np

from winnow.core.config import load_config
from winnow.evaluation.datasets import load_named_dataset
from winnow.metrics import evaluate_recs
from winnow.evaluation.runner import split_dataset
from winnow.evaluation.splits import validation_split
from winnow.training.stacked import StackedRanker

from protocols import PROTOCOLS, add_common, mean_std, planned_runs  # noqa: E402  (bench/)

METRICS = ("ndcg", "precision", "recall", "map", "hit_rate", "coverage")


def run_one(name: str, seed: int, k: int, data_dir: Path | None, sources: list[str] | None,
            ranker: dict | None = None, validation: bool = False) -> list[dict]:
    protocol, ratio = PROTOCOLS[name]
    over: dict = {"ranker": {"seed": seed, **(ranker or {})}}
    if protocol == "temporal":
        over["ranker"].update(inner_split="temporal", as_of="global_last")
    if sources:
        over["ranker"]["sources"] = sources
    cfg = load_config(Path(os.environ.get("WINNOW_HOME", "/nonexistent-winnow-home")), overrides=over)
    ds = load_named_dataset(name, cfg, data_dir=data_dir)
    split = split_dataset(ds, protocol, seed=seed, ratio=ratio)
    if validation:  # tune here: the held-out part is carved from the training part, test unseen
        split = (validation_split(split.train, "temporal", quantile=ratio) if protocol == "temporal"
                 else validation_split(split.train, "stratified", ratio=ratio, seed=100 + seed))
    train_csr = split.train.to_csr(binary=True)
    test_csr = split.test.to_csr(binary=True)
    users = np.flatnonzero((np.diff(test_csr.indptr) > 0) & (np.diff(train_csr.indptr) > 0))
    t0 = time.perf_counter()
    funnel = StackedRanker(ds, cfg).fit(split.train)
    fit_s = time.perf_counter() - t0
    rows = []
    t0 = time.perf_counter()
    recs, _ = funnel.recommend(users, k, exclude=train_csr)
    rec_s = time.perf_counter() - t0
    base = {"dataset": name, "protocol": protocol, "ratio": ratio, "seed": seed, "users": len(users),
            "part": "validation" if validation else "test"}
    m = evaluate_recs(recs, test_csr, k=k, users=users, train=train_csr)
    rows.append({**base, "model": "stacked", **m, "fit_seconds": fit_s,
                 "recommend_ms_per_user": 1000 * rec_s / max(len(users), 1),
                 "ranker": {key: v for key, v in funnel.report_.items() if key != "importance"},
                 "importance": funnel.report_["importance"]})
    for src, model in funnel.sources_.items():
        r, _ = model.recommend(users, k, exclude=train_csr)
        rows.append({**base, "model": src, **evaluate_recs(r, test_csr, k=k, users=users, train=train_csr)})
    return rows


def summarise(runs: list[dict], k: int) -> list[dict]:
    out = []
    for key in dict.fromkeys((r["dataset"], r["model"]) for r in runs):
        rs = [r for r in runs if (r["dataset"], r["model"]) == key]
        out.append({"dataset": key[0], "model": key[1], "seeds": len(rs), **mean_std(rs, METRICS, k)})
    for ds in dict.fromkeys(r["dataset"] for r in out):
        rows = [r for r in out if r["dataset"] == ds]
        best = max((r for r in rows if r["model"] != "stacked"), key=lambda r: r[f"ndcg@{k}"])
        for r in rows:
            if r["model"] == "stacked":
                r["best_retrieval"] = best["model"]
                r["ndcg_lift_vs_best_retrieval"] = r[f"ndcg@{k}"] / best[f"ndcg@{k}"] - 1.0
    return out


def _write(args: argparse.Namespace, runs: list[dict]) -> list[dict]:
    summary = summarise(runs, args.k)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"k": args.k, "protocols": PROTOCOLS, "summary": summary, "runs": runs},
                                    indent=2), encoding="utf-8")
    return summary


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_common(ap, datasets="ml-100k,ml-latest-small,lastfm")
    ap.add_argument("--sources", default=None, help="comma-separated retrieval sources (default: config)")
    ap.add_argument("--ranker", default="{}", help='JSON overrides of [ranker], e.g. \'{"cv_models": 1}\'')
    ap.add_argument("--validation", action="store_true",
                    help="score on a validation part carved from each split's training part (for tuning)")
    args = ap.parse_args(argv)
    sources = [s.strip() for s in args.sources.split(",")] if args.sources else None
    runs: list[dict] = []
    for name, seed in planned_runs(ap, args):
        t0 = time.perf_counter()
        rows = run_one(name, seed, args.k, args.data_dir, sources, json.loads(args.ranker), args.validation)
        runs += rows
        f = rows[0]  # run_one puts the stacked ranker first
        print(f"{name} seed {seed}: {time.perf_counter() - t0:.0f}s  stacked ranker ndcg@{args.k} "
              f"{f[f'ndcg@{args.k}']:.4f}", file=sys.stderr, flush=True)
        _write(args, runs)  # after every seed: a long run interrupted keeps what it measured
    summary = _write(args, runs)
    k = args.k
    print(f"{'dataset':16} {'model':11} {'seeds':>5} " + " ".join(f"{m + '@' + str(k):>17}" for m in METRICS[:4]))
    for r in summary:
        cells = " ".join(f"{r[f'{m}@{k}']:.4f} ±{r[f'{m}@{k}_std']:.4f}" for m in METRICS[:4])
        lift = f"  lift {100 * r['ndcg_lift_vs_best_retrieval']:+.1f}% vs {r['best_retrieval']}" if "best_retrieval" in r else ""
        print(f"{r['dataset']:16} {r['model']:11} {r['seeds']:>5} {cells}{lift}")
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
