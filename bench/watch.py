"""Run a command in a child process and watch it: wall time, sampled peak RSS, stop limits.

``watch(cmd, env=, max_rss_gib=, timeout_s=)`` samples the child's RSS every 0.5 s, echoes its
output (stdout and stderr) with elapsed seconds, and kills it when it passes ``max_rss_gib`` or ``timeout_s``: such a
run is reported as stopped (``stopped_rss`` / ``stopped_time``) with its last lines, never as a
time. Used by the training-scale benchmarks (train_scale.py, cycle_scale.py).
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from typing import Any


def rss_gib(pid: int) -> float:
    """The process's resident set in GiB (0.0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return 0.0


def watch(cmd: list[str], *, env: dict[str, str], max_rss_gib: float, timeout_s: float) -> dict[str, Any]:
    """Run ``cmd`` watched; returns status ("ok" | "failed" | "stopped_rss" | "stopped_time"),
    returncode, wall_s, peak_rss_gib_sampled, load before/after and the last output lines."""
    load_before = os.getloadavg()
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[tuple[float, str]] = []

    def read() -> None:
        assert proc.stdout is not None
        for ln in proc.stdout:
            lines.append((time.perf_counter() - started, ln.rstrip()))
            print(f"  {lines[-1][0]:7.1f}s | {ln.rstrip()}", flush=True)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    peak, status = 0.0, "ok"
    while proc.poll() is None:
        peak = max(peak, rss_gib(proc.pid))
        elapsed = time.perf_counter() - started
        if peak > max_rss_gib or elapsed > timeout_s:
            status = "stopped_rss" if peak > max_rss_gib else "stopped_time"
            proc.kill()
            proc.wait()
            break
        time.sleep(0.5)
    wall = time.perf_counter() - started
    reader.join(5)
    if status == "ok" and proc.returncode != 0:
        status = "failed"
    return {"status": status, "returncode": proc.returncode, "wall_s": round(wall, 1),
            "peak_rss_gib_sampled": round(peak, 2), "load_before": load_before, "load_after": os.getloadavg(),
            "last_lines": [f"{t:7.1f}s {ln}" for t, ln in lines[-6:]]}
