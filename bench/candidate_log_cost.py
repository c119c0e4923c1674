"""Request-path cost of logging candidate sets (``[drift] candidate_sample``), side by side.

For each sample rate (default 0, 0.01, 0.1, 1) runs ``bench/inapp.py`` (Service.recommend in one
process, k = 20: the requesting thread's CPU per request, and the whole process's CPU per request
with the impression writer's encoding and store writes flushed) on its own copy of a trained
home, ``--rounds`` times, rotating which rate goes first so all share the machine's minutes. Then
reads each copy's store for the bytes an impression takes (``length(context) + length(items)``,
SQLite) and the share that carries a candidate set. Reports medians over rounds, the difference
to rate 0, JSON and a summary table.

    python bench/candidate_log_cost.py --home /tmp/home --rounds 3 --requests 1500 \
        --json bench/results/candidate_log_cost.json
"""

from __future__ import annotations

import argparse
import json
import shutil
import sqlite3
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from inapp_compare import git_rev, run_inapp  # noqa: E402
from homes import copy_home


def store_bytes(home: Path) -> dict:
    """Mean stored bytes per impression and the share with a candidate set (SQLite home)."""
    con = sqlite3.connect(f"file:{home / 'winnow.db'}?mode=ro", uri=True)
    try:
        n, size, with_c = con.execute(
            "SELECT count(*), avg(length(context) + length(items)), "
            "sum(json_type(context, '$.candidates') = 'array') FROM impressions").fetchone()
    finally:
        con.close()
    return {"impressions": int(n), "bytes_per_impression": round(float(size or 0), 1),
            "with_candidates": round(float(with_c or 0) / max(int(n), 1), 4)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--home", required=True, help="a trained home (SQLite store; copied once per rate)")
    ap.add_argument("--rates", default="0,0.01,0.1,1")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--requests", type=int, default=1500)
    ap.add_argument("--json", required=True)
    args = ap.parse_args()
    rates = [float(r) for r in args.rates.split(",")]
    src = ROOT / "src"
    runs: dict[float, list[dict]] = {r: [] for r in rates}
    sizes: dict[float, dict] = {}
    homes = {}
    for i, rate in enumerate(rates):
        h = Path(f"{args.home.rstrip('/')}-cand{i}")
        if h.exists():
            shutil.rmtree(h)
        copy_home(args.home, h)
        homes[rate] = h
    try:
        for rnd in range(args.rounds):
            order = rates[rnd % len(rates):] + rates[:rnd % len(rates)]
            for rate in order:
                res = run_inapp(src, homes[rate], args.requests, {"WINNOW__DRIFT__CANDIDATE_SAMPLE": str(rate)})
                runs[rate].append(res)
                print(f"round {rnd} rate {rate}: thread cpu p50 {res['recommend_cpu']['p50_ms']} ms "
                      f"p99 {res['recommend_cpu']['p99_ms']} ms, process cpu/request "
                      f"{res['process_cpu_per_request_ms']} ms, load {res['load_average'][0]:.1f}", flush=True)
        for rate in rates:
            sizes[rate] = store_bytes(homes[rate])
    finally:
        for h in homes.values():
            shutil.rmtree(h, ignore_errors=True)
    summary = []
    for rate in rates:
        rs = runs[rate]
        summary.append({"rate": rate,
                        "thread_cpu_p50_ms": statistics.median(x["recommend_cpu"]["p50_ms"] for x in rs),
                        "thread_cpu_p99_ms": statistics.median(x["recommend_cpu"]["p99_ms"] for x in rs),
                        "thread_cpu_mean_ms": statistics.median(x["recommend_cpu"]["mean_ms"] for x in rs),
                        "process_cpu_per_request_ms": statistics.median(x["process_cpu_per_request_ms"] for x in rs),
                        "candidates_mean": rs[0]["candidates_mean"], **sizes[rate]})
    base = summary[0]
    for s in summary:
        for key in ("thread_cpu_mean_ms", "process_cpu_per_request_ms"):
            s[f"{key}_vs_first"] = round(s[key] - base[key], 3)
    out = {"benchmark": "candidate_log_cost", "home": args.home, "rev": git_rev(ROOT), "rounds": args.rounds,
           "requests": args.requests, "summary": summary, "runs": {str(r): v for r, v in runs.items()},
           "note": "thread CPU = the requesting thread's CPU per Service.recommend; process CPU = every thread "
                   "of the process over the run / requests (impression writer flushed); medians over rounds; "
                   "impressions counted include the warm-up requests"}
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(out, indent=2), encoding="utf-8")
    print("| candidate_sample | thread CPU p50 / mean / p99 ms | process CPU ms/request | delta vs first "
          "(thread mean, process) | bytes/impression | with a set |\n|---|---|---|---|---|---|")
    for s in summary:
        print(f"| {s['rate']} | {s['thread_cpu_p50_ms']} / {s['thread_cpu_mean_ms']} / {s['thread_cpu_p99_ms']} | "
              f"{s['process_cpu_per_request_ms']} | {s['thread_cpu_mean_ms_vs_first']:+.3f}, "
              f"{s['process_cpu_per_request_ms_vs_first']:+.3f} | {s['bytes_per_impression']} | "
              f"{s['with_candidates']} |")


if __name__ == "__main__":
    main()
