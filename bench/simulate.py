"""Closed-loop simulation benchmark: the feedback loop, and exploration as the way out.

    python bench/simulate.py [--rounds 50] [--model als] [--policies greedy,epsilon,softmax,thompson]
                             [--json bench/results/simulate.json] [--img docs/img]

Default world (winnow.simulation.users.SimulationConfig): 1000 users, 2000 items (half at
round 0, the rest released over 40 rounds), slates of 10, ALS (the packaged [models.als]
config) retrained every round on its own click log. Writes the JSON report, the
coverage/engagement PNGs, and OPE-vs-simulated-truth checks; prints a summary table.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from winnow.simulation.loop import simulate  # noqa: E402
from winnow.simulation.ope_check import ope_check  # noqa: E402
from winnow.simulation.report import write_report  # noqa: E402
from winnow.simulation.users import SimulationConfig  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=50)
    ap.add_argument("--model", default="als")
    ap.add_argument("--policies", default="greedy,epsilon,softmax,thompson")
    ap.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "simulate.json")
    ap.add_argument("--img", type=Path, default=ROOT / "docs" / "img")
    args = ap.parse_args()
    cfg = SimulationConfig(rounds=args.rounds)
    runs, seconds = {}, {}
    for p in args.policies.split(","):
        t0 = time.perf_counter()
        runs[p] = simulate(p, cfg, model=args.model)
        seconds[p] = round(time.perf_counter() - t0, 1)
        print(f"{p}: {seconds[p]} s", flush=True)
    checks = []
    for target in ("greedy", "kind=epsilon_greedy,epsilon=0.05", "kind=softmax,temperature=0.5"):
        checks.append(ope_check("epsilon", target, cfg, model=args.model))
    extra = {"config": cfg.to_dict(), "model": args.model, "seconds": seconds, "ope_check": checks,
             "python": platform.python_version()}
    paths = write_report(runs, args.img, extra=extra, plot_name="simulation")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(paths["json"].read_text(encoding="utf-8"), encoding="utf-8")
    paths["json"].unlink()  # the JSON lives under bench/results; docs/img keeps the PNGs
    summary = json.loads(args.json.read_text(encoding="utf-8"))["summary"]
    print("\n| policy | coverage (final round) | never shown | Gini of exposure | engagement (last 10 rounds) | s |")
    print("|---|---|---|---|---|---|")
    for p, s in summary.items():
        print(f"| {p} | {s['coverage_final']:.3f} | {s['never_shown_final']:.3f} | {s['gini_final']:.3f} "
              f"| {s['engagement_long_term']:.4f} | {seconds[p]} |")
    print("\n| target (logged by epsilon) | truth | IPS | SNIPS | DR | DM |")
    print("|---|---|---|---|---|---|")
    for c in checks:
        cells = " | ".join(f"{c['estimators'][e]['value']:.4f} ({c['estimators'][e]['relative_error']:.1%})"
                           for e in ("ips", "snips", "dr", "dm"))
        print(f"| {c['target']} | {c['truth']:.4f} | {cells} |")
    print(f"\nwrote {args.json}, {paths['coverage']}, {paths['engagement']}")


if __name__ == "__main__":
    main()
