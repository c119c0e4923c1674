"""The CI version of bench/soak.py: 20 s of steady mixed load with bundle swaps, real server.

Asserts what must hold on any machine: zero failed requests, zero failed swaps, the server
alive at the end, the RSS curve sampled. Latency and memory budgets are judged by the long
run (`make soak`, docs/HARDENING.md), not here: 20 s on a shared CI runner measures neither.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_short_soak_has_no_failed_request(tmp_path):
    out = tmp_path / "soak.json"
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / "soak.py"), "--duration", "20", "--rate", "25", "--swap-every", "5", "--concurrency", "8",
         "--users", "300", "--items", "300", "--events", "8000", "--p99-ms", "1e9", "--rss-growth-mb", "1e9",
         "--home", str(tmp_path / "home"), "--json", str(out)],
        check=False, capture_output=True, text=True, timeout=400, env={**os.environ, "OPENBLAS_NUM_THREADS": "1"})
    assert out.exists(), proc.stdout[-2000:] + proc.stderr[-2000:]
    result = json.loads(out.read_text())
    assert result["failed"] == 0, result["failures"]
    assert result["requests"] >= 0.9 * 20 * 25
    assert result["swaps"] >= 3 and result["swaps_failed"] == 0
    assert result["server_alive_at_end"] is True
    assert len(result["rss_curve"]) >= 15 and all(m > 0 for _, m in result["rss_curve"])
    assert set(result["by_kind"]) == {"recommend", "events", "items"}
    # the per-second timeline covers the run and counts every request once
    assert 15 <= len(result["timeline"]) <= 21
    assert sum(row["n"] for row in result["timeline"]) == result["requests"]
    assert all(row["server_cores"] >= 0 for row in result["timeline"][1:])
    assert result["slow_requests"]["n"] == result["requests"]
    assert len(result["swap_log"]) == result["swaps"]
    assert proc.returncode == 0, proc.stdout[-2000:]
