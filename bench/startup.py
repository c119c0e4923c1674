"""Start-up time of a home's serving runtime, one or two source trees side by side.

Each round opens ``winnow.serving.service.Service`` on ``--home`` in a new process (import,
bundle load, catalog overlay, the learned ranker's feature-state replay, index load: what
``winnow serve`` does per worker before it answers) and records wall time, CPU time and peak RSS; with two ``--src`` trees the rounds alternate which goes first, so both share
the machine's minute. Serving a 1M-item bundle is a replica's and a rollout's first cost: a
replica that takes half a minute to come up makes every restart and promotion slow.

    python bench/startup.py --home /tmp/s1m --src /tmp/before/src --src src --rounds 3 \
        --json bench/results/startup_1m.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_CHILD = """
import json, os, resource, sys, time
t0, c0 = time.time(), time.process_time()
from winnow.core.config import load_config
from winnow.serving.service import Service
svc = Service(load_config(sys.argv[1]))
wall, cpu = time.time() - t0, time.process_time() - c0
info = {"wall_s": round(wall, 2), "cpu_s": round(cpu, 2), "model_version": svc.runtime.version,
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "load_average": [round(x, 2) for x in os.getloadavg()]}
svc.close()
print(json.dumps(info))
"""


def run_once(src: Path, home: Path) -> dict:
    """One start-up of ``home``'s service with the code of ``src``, in a fresh process."""
    env = {**os.environ, "PYTHONPATH": str(src), "WINNOW_HOME": str(home), "OPENBLAS_NUM_THREADS": "1",
           "WINNOW__SECURITY__AUTH": "false"}
    out = subprocess.run([sys.executable, "-c", _CHILD, str(home)], env=env, check=True, capture_output=True,
                         text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--home", required=True, help="a trained home (opened as a serving worker opens it)")
    ap.add_argument("--src", action="append", default=[], help="a source tree (one or two; default: this tree's src)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", required=True)
    args = ap.parse_args()
    srcs = [Path(s).resolve() for s in (args.src or [str(ROOT / "src")])]
    if len(srcs) > 2:
        ap.error("give one or two --src trees")
    runs: list[list[dict]] = [[] for _ in srcs]
    for r in range(args.rounds):
        order = range(len(srcs)) if r % 2 == 0 else reversed(range(len(srcs)))
        for i in order:
            res = run_once(srcs[i], Path(args.home))
            runs[i].append(res)
            print(f"round {r} {srcs[i]}: wall {res['wall_s']} s, CPU {res['cpu_s']} s, "
                  f"peak RSS {res['peak_rss_mib']} MiB, load {res['load_average'][0]}", flush=True)
    summary = [{"src": str(s), "wall_s_median": statistics.median(x["wall_s"] for x in runs[i]),
                "cpu_s_median": statistics.median(x["cpu_s"] for x in runs[i]),
                "peak_rss_mib_median": statistics.median(x["peak_rss_mib"] for x in runs[i])}
               for i, s in enumerate(srcs)]
    out = {"benchmark": "startup", "home": args.home, "rounds": args.rounds, "summary": summary, "runs": runs}
    if len(srcs) == 2:
        out["cpu_ratio_second_over_first"] = round(summary[1]["cpu_s_median"] / summary[0]["cpu_s_median"], 3)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(out, indent=2), encoding="utf-8")
    print("| tree | wall s (median) | CPU s (median) | peak RSS MiB |\n|---|---|---|---|")
    for s in summary:
        print(f"| {s['src']} | {s['wall_s_median']} | {s['cpu_s_median']} | {s['peak_rss_mib_median']} |")
    if "cpu_ratio_second_over_first" in out:
        print(f"CPU ratio second/first: {out['cpu_ratio_second_over_first']}")


if __name__ == "__main__":
    main()
