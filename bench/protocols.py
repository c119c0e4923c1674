"""What the offline-quality benches share (bench/funnel.py: the served funnel; bench/stacked_ranker.py:
the offline stacked ranker): each dataset's protocol, the common options, the runs they plan and
the mean +- std of a group of runs."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

PROTOCOLS = {"ml-100k": ("random", 0.75), "ml-latest-small": ("temporal", 0.8), "lastfm": ("random", 0.8)}


def add_common(ap: argparse.ArgumentParser, *, datasets: str) -> None:
    """--datasets (default ``datasets``), --seeds, --k, --data-dir, --json."""
    ap.add_argument("--datasets", default=datasets)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--data-dir", type=Path, default=None)
    ap.add_argument("--json", type=Path, required=True)


def planned_runs(ap: argparse.ArgumentParser, args: argparse.Namespace) -> list[tuple[str, int]]:
    """(dataset, split seed) in order; a temporal protocol has one split (the first seed);
    an unknown dataset is a usage error naming the known ones."""
    names = [d.strip() for d in args.datasets.split(",") if d.strip()]
    unknown = [n for n in names if n not in PROTOCOLS]
    if unknown:
        ap.error(f"unknown dataset(s) {unknown}; choose from {sorted(PROTOCOLS)}")
    seeds = [int(s) for s in args.seeds.split(",")]
    return [(name, seed) for name in names for seed in (seeds if PROTOCOLS[name][0] == "random" else seeds[:1])]


def mean_std(runs: list[dict], metrics: tuple[str, ...], k: int) -> dict[str, float]:
    """``<m>@k`` and ``<m>@k_std`` (sample std, 0 for one run) over ``runs`` for each metric."""
    out = {}
    for m in metrics:
        v = np.array([r[f"{m}@{k}"] for r in runs])
        out[f"{m}@{k}"] = float(v.mean())
        out[f"{m}@{k}_std"] = float(v.std(ddof=1)) if len(v) > 1 else 0.0
    return out
