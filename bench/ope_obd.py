"""Off-policy evaluation on the Open Bandit Dataset (ZOZOTOWN, small sample).

    python bench/ope_obd.py [--data ../shared/data/open-bandit-dataset-small] [--bootstrap 1000]
                            [--json bench/results/ope_obd.json]

For each campaign (all, men, women): estimate the Bernoulli-TS policy's click rate from the
uniform-random policy's log with IPS, SNIPS, DR and DM (winnow.evaluation.obd, which states
how the target probabilities are obtained), and compare with the click rate bts logged.
Writes JSON and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

from winnow.evaluation.obd import CAMPAIGNS, evaluate_campaign, format_table

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "open-bandit-dataset-small")
    ap.add_argument("--bootstrap", type=int, default=1000)
    ap.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "ope_obd.json")
    args = ap.parse_args()
    t0 = time.perf_counter()
    results = [evaluate_campaign(args.data, c, n_bootstrap=args.bootstrap) for c in CAMPAIGNS]
    out = {"benchmark": "ope_obd", "data": str(args.data), "bootstrap": args.bootstrap,
           "target_probabilities": "empirical bts action distribution per position (bts is context-free)",
           "seconds": round(time.perf_counter() - t0, 1), "python": platform.python_version(),
           "results": results}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(out, indent=2), encoding="utf-8")
    print(format_table(results))
    print(f"\nwrote {args.json} ({out['seconds']} s)")


if __name__ == "__main__":
    main()
