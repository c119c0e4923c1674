"""In-app time of one recommendation with the bundle the home serves (no HTTP, no client).

Opens the home's service in this process (the learned ranker when the bundle has one), warms
every user's online state, then calls ``Service.recommend`` for ``--requests`` random users
(at the wall clock's time, or with ``--at data`` one hour after the
store's last event: then the feature windows (1 h, 1 d, 7 d) cut through the items' recent
events, as with live traffic, instead of lying after every event of a historical store) and
reports the per-request wall time, its CPU time (this thread's: what a loaded machine's
preemption does not inflate), the whole process's CPU per request over the run (the background
impression writer's encoding and store writes included, flushed at the end) and the pipeline's
own stage timings (ms percentiles).

    python bench/inapp.py --home /tmp/home --requests 2000 --json bench/results/inapp.json
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


def _pct(xs: list[float]) -> dict[str, float]:
    a = np.asarray(xs) * 1e3
    return {"p50_ms": round(float(np.percentile(a, 50)), 3), "p99_ms": round(float(np.percentile(a, 99)), 3),
            "mean_ms": round(float(a.mean()), 3), "n": len(a)}


def measure(home: Path, requests: int, seed: int = 0, at: str = "wall",
            quotas: dict[str, int] | None = None) -> dict:
    """Figures for ``requests`` recommendations (k=20) of random known users of ``home``, at
    the wall clock's time (``at="wall"``) or one hour after the store's last event ("data");
    ``quotas``: retrieval quotas to serve at instead of the configured ones (source -> quota),
    e.g. to reach the issue's 500 candidates."""
    from winnow.core.config import load_config
    from winnow.serving.service import Service

    svc = Service(load_config(home))
    try:
        rt = svc.runtime
        for source, quota in (quotas or {}).items():
            rt.pipeline.set_quota(source, quota)  # ConfigError naming the sources for an unknown one
        users = [str(u) for u in svc.store.read_users()["user_id"]]
        now = None
        if at == "data":
            ts = svc.store.read_events().timestamp
            now = float(ts.max()) + 3600.0 if len(ts) else None
        rng = np.random.default_rng(seed)
        for u in users[:2000]:  # first request loads the user's online state from the store
            svc.recommend(u, k=20, surface="default", exclude=[], explain=False, categories=None, context={},
                          now=now)
        pool = users[:2000]
        svc.impressions.flush()
        wall, cpu, stages, n_cand = [], [], {}, []
        p0 = time.process_time()
        for _ in range(requests):
            u = pool[int(rng.integers(len(pool)))]
            t0, c0 = time.perf_counter(), time.thread_time()
            _, _, slate = svc.recommend(u, k=20, surface="default", exclude=[], explain=False,
                                        categories=None, context={}, now=now)
            wall.append(time.perf_counter() - t0)
            cpu.append(time.thread_time() - c0)
            n_cand.append(slate.n_ranked)
            for st, secs in slate.timings.items():
                stages.setdefault(st, []).append(secs)
        svc.impressions.flush()  # the writer thread's work for these requests counts too
        process_cpu = (time.process_time() - p0) / requests
        ranker = rt.pipeline.ranker
        return {"home": str(home), "at": at, "now": now, "quotas": quotas or {}, "model_version": rt.version, "ranker": type(ranker).__name__,
                "candidates_mean": float(np.mean(n_cand)), "recommend": _pct(wall),
                "recommend_cpu": _pct(cpu),  # this thread's CPU: robust to other processes' load
                # every thread of the process (impression writer included) per request, mean
                "process_cpu_per_request_ms": round(process_cpu * 1e3, 3),
                "stages": {k: _pct(v) for k, v in stages.items()},
                "load_average": os.getloadavg()}
    finally:
        svc.close()


def parse_quotas(ap: argparse.ArgumentParser, given: list[str]) -> dict[str, int]:
    """{source: quota} from ``SOURCE=N`` options; a malformed one is an argparse error."""
    out = {}
    for g in given:
        name, _, n = g.partition("=")
        if not name or not n.isdigit() or int(n) < 1:
            ap.error(f"--quota {g!r}: expected SOURCE=N with N >= 1, e.g. als=420")
        out[name] = int(n)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--home", required=True)
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--at", choices=["wall", "data"], default="wall",
                    help="request time: the wall clock, or one hour after the store's last event")
    ap.add_argument("--quota", action="append", default=[], metavar="SOURCE=N",
                    help="serve SOURCE at retrieval quota N (repeatable), e.g. als=420 for ~500 candidates")
    ap.add_argument("--json")
    args = ap.parse_args()
    out = measure(Path(args.home), args.requests, at=args.at, quotas=parse_quotas(ap, args.quota))
    print(json.dumps(out, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
