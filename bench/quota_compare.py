"""One home's bundle served at two retrieval quotas of one source, side by side in one process.

Opens the home's service (the learned ranker when the bundle has one), warms ``--users`` users'
online state, then answers the same users at each quota in turn (``--rounds`` times, quotas
alternating so both see the same machine load) and reports this thread's CPU per request, the
pipeline's stage medians and how many items the slates at each quota share with the first
quota's (overlap@k; a repeat of the first quota is 1.0 when serving is deterministic).

    python bench/quota_compare.py --home /tmp/s1m --source als --quotas 300,200 \
        --json bench/results/quota_compare_1m.json

What it does not measure: which slate is better. The quality check of a quota is
``bench/funnel.py`` on held-out data (trained and served at that quota).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("WINNOW__SECURITY__AUTH", "false")

import numpy as np  # noqa: E402


def _answer(svc, users: list[str]) -> tuple[dict[str, list[int]], list[float], dict[str, list[float]], list[int]]:
    slates, cpu, stages, n_cand = {}, [], {}, []
    for u in users:
        c0 = time.thread_time()
        _, _, slate = svc.recommend(u, k=20, surface="default", exclude=[], explain=False,
                                    categories=None, context={})
        cpu.append(time.thread_time() - c0)
        slates[u] = [s.item for s in slate.items]
        n_cand.append(slate.n_candidates)
        for st, secs in slate.timings.items():
            stages.setdefault(st, []).append(secs)
    return slates, cpu, stages, n_cand


def _overlap(a: dict[str, list[int]], b: dict[str, list[int]]) -> float:
    return float(np.mean([len(set(a[u]) & set(b[u])) / max(len(a[u]), 1) for u in a]))


def measure(home: Path, source: str, quotas: list[int], n_users: int, rounds: int) -> dict:
    from winnow.core.config import load_config
    from winnow.serving.service import Service

    svc = Service(load_config(home))
    try:
        pipe = svc.runtime.pipeline
        pipe.set_quota(source, quotas[0])  # ConfigError naming the sources when there is none
        users = [str(u) for u in svc.store.read_users()["user_id"][:n_users]]
        _answer(svc, users)  # loads every user's online state
        runs: dict[int, list[tuple]] = {q: [] for q in quotas}
        for _ in range(rounds):
            for q in quotas:
                pipe.set_quota(source, q)
                runs[q].append(_answer(svc, users))
        first = runs[quotas[0]][0][0]
        rows = []
        for q in quotas:
            cpu = np.concatenate([np.asarray(r[1]) for r in runs[q]]) * 1e3
            stages = {st: round(float(np.median(np.concatenate([r[2][st] for r in runs[q]]))) * 1e3, 3)
                      for st in runs[q][0][2]}
            rows.append({"quota": q, "cpu_p50_ms": round(float(np.percentile(cpu, 50)), 3),
                         "cpu_p99_ms": round(float(np.percentile(cpu, 99)), 3),
                         "candidates_mean": round(float(np.mean(runs[q][0][3])), 1),
                         "stage_p50_ms": stages,
                         "overlap_with_first": round(_overlap(first, runs[q][-1][0]), 4)})
        return {"benchmark": "quota_compare", "home": str(home), "model_version": svc.runtime.version,
                "source": source, "users": len(users), "rounds": rounds, "rows": rows,
                "load_average": [round(x, 2) for x in os.getloadavg()]}
    finally:
        svc.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--home", required=True)
    ap.add_argument("--source", default="als")
    ap.add_argument("--quotas", default="300,200")
    ap.add_argument("--users", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--json", required=True)
    args = ap.parse_args()
    out = measure(Path(args.home), args.source, [int(q) for q in args.quotas.split(",")], args.users, args.rounds)
    Path(args.json).write_text(json.dumps(out, indent=2), encoding="utf-8")
    print(f"{'quota':>6} {'cpu p50':>8} {'cpu p99':>8} {'cands':>6} {'overlap':>8}  stage p50 ms")
    for r in out["rows"]:
        print(f"{r['quota']:>6} {r['cpu_p50_ms']:>8} {r['cpu_p99_ms']:>8} {r['candidates_mean']:>6} "
              f"{r['overlap_with_first']:>8}  {r['stage_p50_ms']}")


if __name__ == "__main__":
    main()
