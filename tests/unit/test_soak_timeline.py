"""bench/soak_timeline.py: per-second bins and the attribution of slow requests to causes."""

from __future__ import annotations

import importlib.util
from pathlib import Path

_spec = importlib.util.spec_from_file_location(
    "soak_timeline", Path(__file__).resolve().parents[2] / "bench" / "soak_timeline.py")
soak_timeline = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(soak_timeline)


def _raw() -> dict:
    # 10 s at 10 req/s, 10 ms each; a swap starts at t=5.0 and builds for 0.5 s; the server is
    # CPU-bound (1 core) in second 8 only; three slow requests: near the swap, in the busy second
    # and one queued before its send (all senders busy) at t=1.
    results = [("recommend", i / 10, 0.010, 200, 0.010) for i in range(100)]
    results[52] = ("recommend", 5.2, 0.400, 200, 0.390)  # near the swap
    results[89] = ("events", 8.9, 0.300, 200, 0.290)  # server busy
    results[11] = ("recommend", 1.1, 0.250, 200, 0.020)  # queued: 230 of 250 ms before the send
    cpu, srv = [], 0.0
    for t in range(11):
        cpu.append((float(t), srv, 0.1 * t))
        srv += 1.0 if t == 8 else 0.2  # interval [8, 9): one full core
    return {"results": results, "swaps": [(5.0, "v1", 200, 0.5)], "rss": [(float(t), 100.0) for t in range(11)],
            "cpu": cpu, "load": [1.0] * 11}


def test_timeline_bins_every_request_once_with_its_second_cpu():
    rows = soak_timeline.timeline(_raw())
    assert [r["t"] for r in rows] == [float(t) for t in range(10)]
    assert sum(r["n"] for r in rows) == 100
    assert rows[5]["max_ms"] == 400.0 and rows[4]["max_ms"] == 10.0
    assert rows[8]["server_cores"] == 1.0 and rows[7]["server_cores"] == 0.2
    assert abs(rows[3]["client_cores"] - 0.1) < 1e-9


def test_attribute_slow_names_the_cause_of_each_slow_request():
    out = soak_timeline.attribute_slow(_raw(), slow_ms=100)
    assert out["n_slow"] == 3 and out["n"] == 100
    by_t = {r["t"]: r for r in out["slowest"]}
    assert by_t[5.2]["near_swap"] and not by_t[5.2]["server_busy"]
    assert by_t[8.9]["server_busy"] and not by_t[8.9]["near_swap"]
    assert by_t[1.1]["queued"] and not by_t[1.1]["near_swap"] and not by_t[1.1]["server_busy"]
    assert out["slowest"][0]["ms"] == 400.0  # worst first
    assert out["slow_by_kind"] == {"events": 1, "recommend": 2}
    assert abs(out["share_of_slow"]["near_swap"] - 1 / 3) < 0.01
    # base rate: requests due in [2, 8.5] are within 3 s of the swap (start 5, build 0.5)
    assert 0.6 <= out["share_of_all"]["near_swap"] <= 0.7
