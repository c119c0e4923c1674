"""`make demo`'s main job, end to end: import, evaluate, train, serve, recommend with titles."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_demo_runs_the_whole_product_and_prints_working_curl_lines(tmp_path) -> None:
    port = _free_port()
    env = {**os.environ, "DEMO_SERVE": "0", "DEMO_PORT": str(port), "DEMO_HOME": str(tmp_path / "demo"),
           "OPENBLAS_NUM_THREADS": "1"}
    env.pop("DATA", None)
    proc = subprocess.run([sys.executable, "-m", "winnow.demo"], env=env, capture_output=True,
                          text=True, timeout=300)
    out = proc.stdout
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "imported 1,000 items, 2,000 users, 100,000 events" in out
    for model in ("popularity", "itemitem", "als", "bpr", "ease"):  # the comparison table
        assert re.search(rf"│ {model}\s+│\s+0\.\d{{4}}", out), f"no table row for {model}"
    assert "trained and activated bundle" in out
    users = re.findall(r"^user (\S+) \(model (\S+)\):", out, flags=re.M)
    assert len(users) == 3
    rows = re.findall(r"^\s+(\d)\. (i\d+)\s+(\S.*?)\s+score=", out, flags=re.M)
    assert len(rows) == 15 and all(title.strip() for _, _, title in rows)  # 5 titled items each
    assert f"curl -s 'http://127.0.0.1:{port}/v1/users/{users[0][0]}/recommendations" in out
    first_item = rows[0][1]
    assert f'"item_id": "{first_item}"' in out and f"/v1/items/{first_item}/similar" in out
