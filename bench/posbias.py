"""Position-bias correction of the learned ranker, measured on simulated true engagement.

    python bench/posbias.py [--seeds 0,1,2,3] [--users 3000] [--rounds 4] [--trees 100]
                            [--logging popularity:softmax,als:softmax] [--json bench/results/posbias.json]

For each logging scenario (retrieval model : exploration policy) and seed,
winnow.simulation.posbias.posbias_study logs ``--rounds`` rounds of slates in the simulator
(examine(j) = 1 / (1 + j), 2000 items, slates of 10), trains one ranker per correction mode
(none | ips | lambdarank) on the same logged rows with the packaged [ranker] settings (but
``--trees`` trees each; ``--trees 0``: the product's early stopping on 20% of the users'
lists, whose noise at this size swamps the comparison: bench/results/posbias_early_stopping.json), and
scores each ranker's top 10 over every user's candidates with the simulator's click
probabilities without position bias. Writes JSON (per run: engagement per mode, the estimated
examination curve, timings; the true curve) and prints a summary table and the curves.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import lightgbm  # noqa: E402
import numpy as np  # noqa: E402

from winnow.simulation.posbias import posbias_study  # noqa: E402
from winnow.simulation.users import SimulationConfig  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
MODES = ("none", "ips", "lambdarank")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0,1,2,3")
    ap.add_argument("--trees", type=int, default=100)
    ap.add_argument("--users", type=int, default=3000)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--logging", default="popularity:softmax,als:softmax")
    ap.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "posbias.json")
    args = ap.parse_args()
    runs = []
    for scenario in args.logging.split(","):
        model, policy = scenario.split(":", 1)
        for seed in (int(s) for s in args.seeds.split(",")):
            t0 = time.perf_counter()
            res = posbias_study(SimulationConfig(n_users=args.users, seed=seed), logging=policy,
                                log_rounds=args.rounds, requests=1, modes=MODES, model=model,
                                trees=args.trees or None)
            res |= {"scenario": scenario, "seed": seed, "seconds": round(time.perf_counter() - t0, 1)}
            runs.append(res)
            te = {m: round(res["modes"][m]["true_engagement"], 4) for m in MODES}
            print(f"{scenario} seed {seed}: {te} ({res['seconds']} s)", flush=True)
    summary: dict[str, dict[str, object]] = {}
    for scenario in dict.fromkeys(r["scenario"] for r in runs):
        rs = [r for r in runs if r["scenario"] == scenario]
        row: dict[str, object] = {"seeds": [r["seed"] for r in rs]}
        for m in MODES:
            te = np.array([r["modes"][m]["true_engagement"] for r in rs])
            row[m] = {"true_engagement_mean": float(te.mean()),
                      "expected_clicks_mean": float(np.mean([r["modes"][m]["expected_clicks"] for r in rs])),
                      "fit_seconds_mean": float(np.mean([r["modes"][m]["fit_seconds"] for r in rs]))}
            if m != "none":
                base = np.array([r["modes"]["none"]["true_engagement"] for r in rs])
                row[m]["relative_gain_per_seed"] = [float(v) for v in te / base - 1.0]  # type: ignore[index]
        row["greedy_true_engagement_mean"] = float(np.mean([r["greedy"]["true_engagement"] for r in rs]))
        curves = np.array([r["modes"]["lambdarank"]["curve"] for r in rs])
        row["curve_mean"] = [float(v) for v in curves.mean(axis=0)]
        row["curve_max_abs_error"] = float(np.max(np.abs(curves - np.array(rs[0]["true_curve"]))))
        summary[scenario] = row
    out = {"benchmark": "posbias", "users": args.users, "log_rounds": args.rounds, "trees": args.trees or None,
           "true_curve": runs[0]["true_curve"], "summary": summary, "runs": runs,
           "python": platform.python_version(), "lightgbm": lightgbm.__version__}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(out, indent=1), encoding="utf-8")
    print("\n| logging | mode | true engagement (mean) | vs none, per seed | expected clicks | fit s |")
    print("|---|---|---|---|---|---|")
    for scenario, row in summary.items():
        for m in MODES:
            r = row[m]  # type: ignore[index]
            gain = ", ".join(f"{g:+.1%}" for g in r.get("relative_gain_per_seed", []))  # type: ignore[union-attr]
            print(f"| {scenario} | {m} | {r['true_engagement_mean']:.4f} | {gain or '-'} | "  # type: ignore[index]
                  f"{r['expected_clicks_mean']:.4f} | {r['fit_seconds_mean']:.1f} |")  # type: ignore[index]
        print(f"| {scenario} | (logging model, greedy) | {row['greedy_true_engagement_mean']:.4f} | - | - | - |")
    print("\nexamination curve, position 0..9 (relative to position 0)")
    print(f"{'true':<20}" + " ".join(f"{v:.3f}" for v in out["true_curve"]))
    for scenario, row in summary.items():
        print(f"{scenario:<20}" + " ".join(f"{v:.3f}" for v in row["curve_mean"])  # type: ignore[union-attr]
              + f"   (max |error| over seeds {row['curve_max_abs_error']:.3f})")
    print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
