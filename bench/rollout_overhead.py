"""What a running rollout costs the champion: open-loop latency with no rollout, with a shadow
and with a canary, on one server, rows alternating so each pair shares the machine's minute.

Builds (or reuses) a home like bench/serve.py (``--movielens DIR`` or a synthetic world, the
packaged defaults: the learned ranker), trains a challenger with ``winnow train --no-activate``,
starts ``winnow serve`` (``--workers`` processes) and measures open-loop rows at ``--rate``
(bench/loadgen.py: latency from each request's scheduled time) in ``--repeats`` rounds of:

- ``none``: no rollout;
- ``shadow``: ``POST /v1/admin/rollout/shadow`` at ``--sample``: the challenger answers that
  share of requests off the response path; the row records how many shadow answers the store
  received during it (proof the shadow ran) and their challenger-side latency;
- ``canary``: ``POST /v1/admin/rollout/canary`` with plan ``--share``,100 and a step far longer
  than the run: that share of users is served by the challenger; the row records the requests
  each arm answered during it (from the rollout report).

Before each measured row a ``--settle`` row (10 s at the same rate) is run and recorded but
not summarised: the row after an abort (the workers freeing a 1M challenger) or after start-up
was slower than the next (stop 21: a ``none`` row right after an abort 20.7 / 45.4 ms, the
``none`` row after it 13.5 / 23.7 ms), which made ``none`` look worse than a shadow.

Decisions are switched off for the run (``[rollout] check_s`` = 1 day): the benchmark measures
the serving cost of holding and running a challenger, not the decision rules (tested elsewhere).
Each rollout is aborted after its row. The goal from issue 15: the champion's p99 with a shadow
at most 2 ms above the p99 without one.

    python bench/rollout_overhead.py --movielens ../shared/data/ml-latest-small \
        --json bench/results/rollout_overhead_mls.json
    python bench/rollout_overhead.py ... --rate 150,300 --modes none,shadow   # side by side, two rates
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
import serve  # build, running_server, load_users, row

ROOT = Path(__file__).resolve().parents[1]
DAY_S = 86_400


def challenger(home: Path, src: Path) -> str:
    """A second bundle of the same data, written with ``train --no-activate``; its version."""
    versions = {p.name for p in (home / "bundles").iterdir() if p.is_dir()}
    active = (home / "bundles" / "ACTIVE").read_text().strip()
    extra = sorted(versions - {active})
    if extra:
        return extra[-1]
    serve._run_py(src, ["-c", "from winnow.cli import main; main()", "--home", str(home), "train", "--no-activate"],
                  home)
    new = sorted({p.name for p in (home / "bundles").iterdir() if p.is_dir()} - versions)
    if not new:
        raise RuntimeError("train --no-activate wrote no bundle")
    return new[-1]


def rollout(c: httpx.Client, mode: str, body: dict) -> dict:
    r = c.post(f"/v1/admin/rollout/{mode}", json=body)
    if r.status_code != 200:
        raise RuntimeError(f"starting the {mode} failed: {r.status_code} {r.text[:500]}")
    return r.json()


def report(c: httpx.Client) -> dict:
    return c.get("/v1/admin/rollout").json()


def arm_requests(rep: dict) -> dict[str, int]:
    arms = ((rep.get("now") or {}).get("evidence") or {}).get("arms") or {}
    return {a: int(v.get("requests") or 0) for a, v in arms.items()}


def loaded_workers(url: str, version: str, polls: int = 24) -> set[str]:
    """The worker pids (``x-winnow-worker``) that answer, on fresh connections, that they hold
    ``version`` as the challenger (``GET /v1/admin/rollout``: ``here.challenger_loaded``)."""
    out: set[str] = set()
    for _ in range(polls):
        with httpx.Client(base_url=url, timeout=30) as fresh:  # a new connection: maybe another worker
            r = fresh.get("/v1/admin/rollout")
        if r.status_code == 200 and (r.json().get("here") or {}).get("challenger_loaded") == version:
            out.add(r.headers.get("x-winnow-worker", "?"))
    return out


def warm(c: httpx.Client, url: str, paths: list[str], pid: int, mode: str, deadline_s: float,
         version: str, workers: int) -> list[dict]:
    """Light load until every worker holds the challenger (each of ``workers`` pids answers so,
    on fresh connections) and the rollout answers: a shadow's records or a canary's challenger
    answers reach the store (bounded by ``deadline_s``). The challenger is built in each
    worker's follower thread: a row that starts before every worker finished it measures the
    build, not the rollout (the warm rows record what the build costs the champion). Returns
    the warm rows (p50/p99 of the champion while the challenger is built)."""
    end, rows = time.time() + deadline_s, []
    while time.time() < end:
        r = serve.row(f"warm {mode}", url, paths, 3.0, pid, rate=100)
        rows.append({k: r.get(k) for k in ("achieved_rps", "p50_ms", "p99_ms", "errors", "server_cpu_ms_per_request")})
        rep = report(c)
        answering = ((mode == "shadow" and (rep.get("shadow") or {}).get("requests", 0) > 20)
                     or (mode == "canary" and arm_requests(rep).get("challenger", 0) > 20))
        if answering and len(loaded_workers(url, version)) >= workers:
            return rows
    raise RuntimeError(f"the {mode} did not start answering within {deadline_s} s: {json.dumps(rep)[:800]}")


def measure_rate(c: httpx.Client, url: str, paths: list[str], pid: int, version: str, rate: float,
                 modes: list[str], args: argparse.Namespace) -> dict:
    """``args.repeats`` rounds of one row per mode at ``rate`` (order reversed every other
    round); the rows, the medians per mode and each mode's p99 minus the no-rollout p99."""
    rows: list[dict] = []
    for rep_i in range(args.repeats):
        for mode in (modes if rep_i % 2 == 0 else modes[::-1]):
            extra: dict = {}
            if mode == "shadow":
                rollout(c, "shadow", {"bundle": version, "sample": args.sample})
                extra["warm"] = warm(c, url, paths, pid, mode, 300, version, args.workers)
                before = report(c)["shadow"]["requests"]
            elif mode == "canary":
                rollout(c, "canary", {"bundle": version, "plan": [args.share, 100], "step_min": "24h",
                                      "min_exposed": 10**9})
                extra["warm"] = warm(c, url, paths, pid, mode, 300, version, args.workers)
                before_arms = arm_requests(report(c))
            if args.settle > 0:  # the previous row's end (an abort freeing a challenger, the start) is not this row's
                settled = serve.row(f"settle {mode}", url, paths, args.settle, pid, rate=rate)
                extra["settle"] = {k: settled.get(k) for k in ("p99_ms", "errors")}
            r = serve.row(f"open {rate:g}/s {mode}", url, paths, args.duration, pid, rate=rate)
            if mode == "shadow":
                rep = report(c)
                extra = {**extra, "shadow_answers_in_row": rep["shadow"]["requests"] - before,
                         "shadow_expected_in_row": round(rate * args.duration * args.sample),
                         "shadow_summary": rep["shadow"], "shadow_here": rep["here"].get("shadow")}
            elif mode == "canary":
                after = arm_requests(report(c))
                extra = {**extra, "arm_requests_in_row": {a: after.get(a, 0) - before_arms.get(a, 0) for a in after}}
            if mode != "none":
                c.post("/v1/admin/rollout/abort").raise_for_status()
            r.update({"mode": mode, "round": rep_i, "rate": rate, **extra})
            rows.append(r)
            print(f"    {mode}: {json.dumps({k: v for k, v in extra.items() if k != 'shadow_summary'})}", flush=True)
    summary = {}
    for mode in modes:
        mine = [r for r in rows if r["mode"] == mode]
        summary[mode] = {"p50_ms": statistics.median(r["p50_ms"] for r in mine),
                         "p99_ms": statistics.median(r["p99_ms"] for r in mine),
                         "p99_ms_rows": [r["p99_ms"] for r in mine],
                         "errors": sum(r["errors"] for r in mine),
                         "server_cpu_ms_per_request": statistics.median(r["server_cpu_ms_per_request"] for r in mine),
                         "worker_cpu_ms_per_request": statistics.median(
                             r["cpu_ms_per_request_by_role"].get("worker", 0.0) for r in mine)}
        warm_p99 = [w["p99_ms"] for r in mine for w in r.get("warm", [])]
        if warm_p99:  # the champion while the challenger was built (3 s rows at 100 req/s)
            summary[mode].update({"warm_rows": len(warm_p99), "warm_p99_ms_median": statistics.median(warm_p99),
                                  "warm_p99_ms_max": max(warm_p99),
                                  "warm_rows_p99_over_100ms": sum(p > 100 for p in warm_p99)})
    delta = {m: round(summary[m]["p99_ms"] - summary["none"]["p99_ms"], 3) for m in modes if m != "none"}
    return {"rate": rate, "summary": summary, "p99_delta_ms": delta, "rows": rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    serve.world_args(ap)
    ap.add_argument("--rate", default="300", help="open-loop rate(s), comma-separated, e.g. 150,300")
    ap.add_argument("--modes", default="none,shadow,canary", help="rows per round (none must be one)")
    ap.add_argument("--duration", type=float, default=20.0)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--sample", type=float, default=0.2)
    ap.add_argument("--share", type=int, default=50)
    ap.add_argument("--settle", type=float, default=10.0,
                    help="seconds of load at the row's rate before each measured row, not measured (0: none)")
    ap.add_argument("--json", required=True)
    args = ap.parse_args()
    rates = [float(x) for x in str(args.rate).split(",") if x.strip()]
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if "none" not in modes or set(modes) - {"none", "shadow", "canary"}:
        ap.error(f"--modes {args.modes!r}: choose from none, shadow, canary, including none")
    home = Path(args.home or f"/tmp/winnow-bench-rollout-{os.getpid()}")
    src = Path(args.src).resolve()
    t0 = time.time()
    built = serve.build(home, src, args)
    version = challenger(home, src)
    users = serve.load_users(home, src, args.active_users)
    paths = [f"/v1/users/{u}/recommendations?k=20" for u in users]
    os.environ["WINNOW__ROLLOUT__CHECK_S"] = str(DAY_S)  # the server inherits it: no decisions
    by_rate: list[dict] = []
    with serve.running_server(home, src, args.workers) as (proc, url):
        # no kept-alive connection: a worker closes one idle past its keep-alive timeout (5 s)
        with httpx.Client(base_url=url, timeout=120, limits=httpx.Limits(max_keepalive_connections=0)) as c:
            champion = c.get("/readyz").json()["model_version"]
            serve.row("warm-up closed c=4", url, paths, max(5.0, len(paths) / 100), proc.pid, conns=4)
            for rate in rates:
                by_rate.append(measure_rate(c, url, paths, proc.pid, version, rate, modes, args))
    out = {"benchmark": "rollout_overhead",
           "world": serve.world_of(home, {"movielens": args.movielens} if args.movielens else
                                   {"items": args.items, "users": args.users, "events": args.events}),
           "home": str(home), "build": built, "champion": champion, "challenger": version,
           "workers": args.workers, "rates": rates, "modes": modes, "duration_s": args.duration,
           "sample": args.sample, "share": args.share, "by_rate": by_rate,
           "goal": "shadow: champion p99 at most +2 ms", "total_s": round(time.time() - t0, 1),
           "overrides": {k: v for k, v in os.environ.items() if k.startswith("WINNOW__")}}
    if len(by_rate) == 1:  # the single-rate layout of earlier results
        out.update(rate=by_rate[0]["rate"], summary=by_rate[0]["summary"], p99_delta_ms=by_rate[0]["p99_delta_ms"],
                   rows=by_rate[0]["rows"])
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(out, indent=2), encoding="utf-8")
    print("| rate | rollout | p50 ms | p99 ms (rows) | errors | server CPU ms/req (workers) | while building: 3 s rows, "
          "p99 median / max ms, rows > 100 ms |\n|---|---|---|---|---|---|---|")
    for res in by_rate:
        for m, s in res["summary"].items():
            built = (f"{s['warm_rows']}, {s['warm_p99_ms_median']} / {s['warm_p99_ms_max']}, "
                     f"{s['warm_rows_p99_over_100ms']}" if "warm_rows" in s else "-")
            print(f"| {res['rate']:g} | {m} | {s['p50_ms']} | {s['p99_ms']} ({s['p99_ms_rows']}) | {s['errors']} | "
                  f"{s['server_cpu_ms_per_request']} ({s['worker_cpu_ms_per_request']}) | {built} |")
        print(f"rate {res['rate']:g}: p99 delta vs none (medians of {args.repeats} rounds): {res['p99_delta_ms']}")


if __name__ == "__main__":
    main()
