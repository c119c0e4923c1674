"""bench/loadgen.py measures open-loop latency from each request's scheduled time: a server
stall shows as many slow requests (every arrival during it), not as one (coordinated omission),
and the per-worker counts come from the x-winnow-worker header."""

from __future__ import annotations

import importlib.util
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

_spec = importlib.util.spec_from_file_location("loadgen", Path(__file__).resolve().parents[2] / "bench" / "loadgen.py")
loadgen = importlib.util.module_from_spec(_spec)
sys.modules["loadgen"] = loadgen  # its dataclasses look their module up
_spec.loader.exec_module(loadgen)

STALL_S = 0.4


def _server(stall_at: int) -> ThreadingHTTPServer:
    lock = threading.Lock()  # every request passes through it: one stall holds them all
    seen = [0]

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:  # noqa: N802
            with lock:
                seen[0] += 1
                if seen[0] == stall_at:
                    time.sleep(STALL_S)
            body = b"ok"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("x-winnow-worker", "w1" if self.path.endswith("1") else "w2")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


def test_a_stall_delays_every_request_scheduled_during_it() -> None:
    srv = _server(stall_at=50)
    try:
        rate = 100.0
        res = loadgen.run(f"http://127.0.0.1:{srv.server_port}", ["/a1", "/a2"], rate=rate, duration_s=2.0,
                          pool=2, seed=1)
    finally:
        srv.shutdown()
    slow = sum(lat > STALL_S / 2 for lat in res.latencies)
    # arrivals in the first half of the stall wait more than half of it: ~rate * STALL_S / 2 of them
    assert slow >= rate * STALL_S / 2 * 0.7, f"{slow} slow requests: the stall was not charged to them"
    assert max(res.latencies) >= STALL_S * 0.9
    summary = res.summary()
    assert summary["errors"] == 0 and summary["requests"] == summary["scheduled"] == 199  # 0.01 .. 1.99 s
    assert set(summary["per_worker"]) == {"w1", "w2"} and sum(summary["per_worker"].values()) == 199
    assert 0 <= summary["client_cpu_share"] < 1


def test_closed_loop_keeps_one_request_per_connection() -> None:
    srv = _server(stall_at=-1)
    try:
        res = loadgen.run(f"http://127.0.0.1:{srv.server_port}", ["/b1"], conns=3, duration_s=0.5)
    finally:
        srv.shutdown()
    s = res.summary()
    assert s["connections"] == 3 and s["errors"] == 0 and s["requests"] > 10
