"""How long a challenger build in a serving worker holds the GIL at a time.

Starts a ``Service`` on ``--home`` (its ACTIVE bundle, as a worker does), then builds
``--challenger`` with ``Service.build_challenger`` in a thread -- what a worker's rollout
follower does -- while the main thread ticks every 1 ms. A tick that comes back more than
``--gap-ms`` late is a gap: the build held the GIL (or the machine held both threads) that long,
and a request in that worker would have waited as long. For each gap: its length and the build
thread's stack before and after it. Run it on a quiet machine; compare source trees with
``PYTHONPATH=<other tree>/src``.

    python bench/build_gil.py --home /tmp/s1m --challenger 20261206T010112Z-c2f9a2 \\
        --json bench/results/build_gil_1m_stop21.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
import traceback
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--home", required=True)
    ap.add_argument("--challenger", required=True, help="a bundle version under <home>/bundles")
    ap.add_argument("--gap-ms", type=float, default=20.0)
    ap.add_argument("--json", required=True)
    args = ap.parse_args()
    import winnow
    from winnow.core.config import load_config
    from winnow.serving.service import Service

    t0 = time.perf_counter()
    svc = Service(load_config(Path(args.home)))
    startup_s = time.perf_counter() - t0
    done, took = threading.Event(), {}

    def build() -> None:
        t = time.perf_counter()
        try:
            svc.build_challenger(args.challenger)
        finally:
            took["build_s"] = time.perf_counter() - t
            done.set()

    worker = threading.Thread(target=build, name="challenger-build")
    worker.start()

    def where() -> list[str]:
        frame = sys._current_frames().get(worker.ident or -1)
        return [] if frame is None else [f"{Path(f.filename).name}:{f.lineno} {f.name}"
                                         for f in traceback.extract_stack(frame)][-5:]

    gaps, ticks = [], 0
    prev, before = time.perf_counter(), where()
    while not done.is_set():
        time.sleep(0.001)
        now = time.perf_counter()
        after = where()
        ticks += 1
        if (now - prev) * 1000.0 > args.gap_ms:
            gaps.append({"ms": round((now - prev) * 1000.0, 1), "before": before, "after": after})
        prev, before = now, after
    worker.join()
    svc.close()
    gaps.sort(key=lambda g: -g["ms"])
    out = {"benchmark": "build_gil", "winnow": str(Path(winnow.__file__).parent), "home": args.home,
           "challenger": args.challenger, "startup_s": round(startup_s, 2), "build_s": round(took["build_s"], 2),
           "ticks": ticks, "gap_ms_threshold": args.gap_ms, "gaps": len(gaps),
           "gap_ms_sum": round(sum(g["ms"] for g in gaps), 1), "gap_ms_max": gaps[0]["ms"] if gaps else 0.0,
           "top": gaps[:15], "load": os.getloadavg()[0]}
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(out, indent=2), encoding="utf-8")
    print(f"| source | build s | gaps > {args.gap_ms:g} ms | sum ms | max ms |\n|---|---|---|---|---|\n"
          f"| {out['winnow']} | {out['build_s']} | {out['gaps']} | {out['gap_ms_sum']} | {out['gap_ms_max']} |")
    for g in gaps[:8]:
        print(f"  {g['ms']:7.1f} ms  {' <- '.join(reversed(g['before'][-3:]))}")


if __name__ == "__main__":
    main()
