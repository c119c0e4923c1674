"""One `winnow autopilot` cycle at the scale the product is for: wall time and peak RSS, per stage.

    python bench/cycle_scale.py --home /tmp/tt-1m --json bench/results/cycle_scale_1m.json
    python bench/cycle_scale.py --size 100k --json bench/results/cycle_scale_100k.json

The home is a store with a champion: ``--home`` an existing one (e.g. the 1M world train_scale.py
imported and trained), else ``--size`` imports train_scale.py's synthetic world into ``--workdir``.
The home is copied first (``--copy-to``, default a sibling ``<home>-cycle``) unless ``--in-place``:
a cycle writes bundles and records, and the benchmark must not change the world it was given.
Without an ACTIVE bundle the champion is trained first (``winnow train``, watched, reported apart).

The cycle is ``python -m winnow --home H autopilot --once`` in a fresh process with the home's
configuration, watched (bench/watch.py: RSS sampled every 0.5 s, stopped past ``--max-rss-gib`` or
``--timeout-min``, a stopped run is reported as stopped, never as a time). Its per-stage figures
(wall / CPU s, peak RSS) and the gate's verdict come from the cycle record, through the same
``status_data`` the CLI and the dashboard show.

Output: JSON (machine facts, load averages, the champion run, the cycle) + a summary table.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from train_scale import ROOT, SIZES, _env, _machine, _winnow, ensure_world
from watch import watch
from homes import copy_home


def _cycle(home: Path, src: Path, *, max_rss_gib: float, timeout_s: float) -> dict[str, Any]:
    rec = watch(_winnow(src, home, "autopilot", "--once"), env=_env(src), max_rss_gib=max_rss_gib,
                timeout_s=timeout_s)
    sys.path.insert(0, str(src))
    from winnow.cyclelog.record import load_records
    from winnow.cyclelog.status import status_data

    cycles = status_data(load_records(home))["cycles"]
    if cycles:
        rec["cycle"] = cycles[-1]
    return rec


def _table(rec: dict[str, Any]) -> str:
    cyc = rec.get("cycle") or {}
    rows = ["| stage | status | wall | CPU | peak RSS | summary |", "|---|---|---|---|---|---|"]
    for st in cyc.get("stages", []):
        rss = f"{st['peak_rss_mib'] / 1024:.1f} GiB" if st.get("peak_rss_mib") else "-"
        wall = f"{st['wall_s']:.0f} s" if st.get("wall_s") is not None else "-"
        cpu = f"{st['cpu_s']:.0f} s" if st.get("cpu_s") is not None else "-"
        rows.append(f"| {st['name']} | {st['status']} | {wall} | {cpu} | {rss} | {st['summary']} |")
    rows.append(f"| **cycle** | {rec['status']} | **{rec['wall_s'] / 60:.1f} min** | | "
                f"**{rec['peak_rss_gib_sampled']:.1f} GiB** | load {rec['load_before'][0]:.1f} at start |")
    return "\n".join(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--home", default="", help="an existing home (copied first unless --in-place)")
    ap.add_argument("--size", default="1m", choices=sorted(SIZES), help="without --home: train_scale.py's world")
    ap.add_argument("--workdir", default="/tmp/winnow-train-scale")
    ap.add_argument("--copy-to", default="")
    ap.add_argument("--in-place", action="store_true")
    ap.add_argument("--src", default="src", help="the source tree to run")
    ap.add_argument("--max-rss-gib", type=float, default=12.0)
    ap.add_argument("--timeout-min", type=float, default=60.0)
    ap.add_argument("--json", required=True)
    args = ap.parse_args()
    src = (ROOT / args.src) if not Path(args.src).is_absolute() else Path(args.src)
    world: dict[str, Any] = {}
    if args.home:
        given = Path(args.home)
        marker = given / "imported.json"
        world = json.loads(marker.read_text()) if marker.is_file() else {}
    else:
        given, world = ensure_world(args.size, Path(args.workdir), src)
    home = given
    if not args.in_place:
        home = Path(args.copy_to) if args.copy_to else given.with_name(given.name + "-cycle")
        if home.exists():
            shutil.rmtree(home)
        print(f"copying {given} -> {home}", flush=True)
        copy_home(given, home)
    out: dict[str, Any] = {"machine": _machine(), "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                           "commit": subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                                                    capture_output=True, text=True).stdout.strip(),
                           "home": str(given), "world": world}
    if not (home / "bundles" / "ACTIVE").is_file():
        print("== no champion: winnow train", flush=True)
        out["champion_train"] = watch(_winnow(src, home, "train"), env=_env(src), max_rss_gib=args.max_rss_gib,
                                      timeout_s=args.timeout_min * 60)
        if out["champion_train"]["status"] != "ok":
            Path(args.json).write_text(json.dumps(out, indent=2))
            sys.exit(f"champion training {out['champion_train']['status']}; wrote {args.json}")
    print("== winnow autopilot --once", flush=True)
    out["cycle_run"] = _cycle(home, src, max_rss_gib=args.max_rss_gib, timeout_s=args.timeout_min * 60)
    Path(args.json).write_text(json.dumps(out, indent=2))
    print(_table(out["cycle_run"]))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
