"""The command line the ml-100k diagnosis benches share (bench/funnel_gap.py, bench/served_funnel.py):
``--seeds``, ``--k``, ``--data-dir``, ``--json``; one run per split seed, the JSON rewritten after
every seed (an interrupted run keeps what it measured), one summary line per seed on stdout."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

from winnow.evaluation.datasets import default_data_dir


def seeded_main(doc: str, run: Callable[[Path, int, int], dict], line: Callable[[dict, int], str],
                argv: list[str] | None = None) -> int:
    """Parse the shared options, call ``run(data_dir, seed, k)`` per seed, print ``line(result, k)``
    and write {"dataset", "protocol", "k", "ndcg_mean", "runs"} to --json."""
    ap = argparse.ArgumentParser(description=doc.split("\n")[0])
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--data-dir", type=Path, default=None)
    ap.add_argument("--json", type=Path, required=True)
    args = ap.parse_args(argv)
    runs: list[dict] = []
    for s in (int(x) for x in args.seeds.split(",")):
        runs.append(run(args.data_dir or default_data_dir(), s, args.k))
        print(f"seed {s}: {line(runs[-1], args.k)}", flush=True)
        key = f"ndcg@{args.k}"
        nd = [r[key] for r in runs if isinstance(r.get(key), float)]
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"dataset": "ml-100k", "protocol": "random 0.75", "k": args.k,
                                         "ndcg_mean": float(np.mean(nd)) if nd else None, "runs": runs},
                                        indent=2), encoding="utf-8")
    print(f"wrote {args.json}", file=sys.stderr)
    return 0
