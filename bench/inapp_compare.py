"""In-app time of two source trees on the same home, side by side (alternating rounds).

Runs ``bench/inapp.py`` (Service.recommend in one process: this thread's CPU time per
request, wall time, stage timings) for each ``--src`` in turn, ``--rounds`` times, alternating
which goes first, so both trees share the machine's minute. Each tree gets its own copy of the
home (a run logs impressions into its store). Reports per tree the median over rounds of the CPU
p50/p99, and the ratio of the two, in JSON and a summary table.

    python bench/inapp_compare.py --home /tmp/home --src /tmp/before/src --src src \
        --rounds 3 --requests 1500 --json bench/results/inapp_compare.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

from homes import copy_home

ROOT = Path(__file__).resolve().parents[1]


def run_inapp(src: Path, home: Path, requests: int, extra_env: dict[str, str] | None = None,
              quotas: list[str] | None = None) -> dict:
    """bench/inapp.py on ``home`` with the code of ``src`` (``extra_env``: e.g. config overrides
    as WINNOW__SECTION__KEY) in a fresh process; its JSON result."""
    env = {**os.environ, "PYTHONPATH": str(src), "WINNOW_HOME": str(home), "OPENBLAS_NUM_THREADS": "1",
           "WINNOW__SECURITY__AUTH": "false", **(extra_env or {})}
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "inapp.py"), "--home", str(home),
                          "--requests", str(requests), *(f"--quota={q}" for q in quotas or [])],
                         env=env, check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def git_rev(src: Path) -> str:
    r = subprocess.run(["git", "-C", str(src), "rev-parse", "--short", "HEAD"], check=False,
                       capture_output=True, text=True)
    return r.stdout.strip() or "unknown"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--home", required=True, help="a trained home (copied once per tree)")
    ap.add_argument("--src", action="append", required=True, help="a source tree (give two)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--requests", type=int, default=1500)
    ap.add_argument("--quota", action="append", default=[], metavar="SOURCE=N",
                    help="passed to bench/inapp.py: serve SOURCE at quota N (e.g. als=420: ~500 candidates)")
    ap.add_argument("--json", required=True)
    args = ap.parse_args()
    if len(args.src) != 2:
        ap.error("give exactly two --src trees")
    srcs = [Path(s).resolve() for s in args.src]
    homes = []
    for i in range(2):
        h = Path(f"{args.home.rstrip('/')}-cmp{i}")
        if h.exists():
            shutil.rmtree(h)
        copy_home(args.home, h)
        homes.append(h)
    runs: list[list[dict]] = [[], []]
    try:
        for r in range(args.rounds):
            for i in ((0, 1) if r % 2 == 0 else (1, 0)):
                res = run_inapp(srcs[i], homes[i], args.requests, quotas=args.quota)
                runs[i].append(res)
                print(f"round {r} {srcs[i]}: cpu p50 {res['recommend_cpu']['p50_ms']} ms "
                      f"p99 {res['recommend_cpu']['p99_ms']} ms, load {res['load_average'][0]:.1f}", flush=True)
    finally:
        for h in homes:
            shutil.rmtree(h, ignore_errors=True)
    summary = []
    for i, src in enumerate(srcs):
        med = {q: statistics.median(x["recommend_cpu"][f"{q}_ms"] for x in runs[i]) for q in ("p50", "p99")}
        stages = {st: statistics.median(x["stages"][st]["p50_ms"] for x in runs[i]) for st in runs[i][0]["stages"]}
        summary.append({"src": str(src), "rev": git_rev(src), "cpu_p50_ms": med["p50"], "cpu_p99_ms": med["p99"],
                        "stage_p50_ms": stages, "candidates_mean": runs[i][0]["candidates_mean"],
                        "ranker": runs[i][0]["ranker"]})
    ratio = {q: round(summary[1][f"cpu_{q}_ms"] / summary[0][f"cpu_{q}_ms"], 3) for q in ("p50", "p99")}
    out = {"benchmark": "inapp_compare", "home": args.home, "rounds": args.rounds, "requests": args.requests,
           "quotas": args.quota,
           "summary": summary, "ratio_second_over_first": ratio, "runs": runs,
           "note": "CPU = the requesting thread's CPU time per Service.recommend; medians over rounds"}
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(out, indent=2), encoding="utf-8")
    print("| tree | rev | CPU p50 ms | CPU p99 ms | stages p50 ms |\n|---|---|---|---|---|")
    for s in summary:
        print(f"| {s['src']} | {s['rev']} | {s['cpu_p50_ms']} | {s['cpu_p99_ms']} | {s['stage_p50_ms']} |")
    print(f"ratio second/first: {ratio}")


if __name__ == "__main__":
    main()
