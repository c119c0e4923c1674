"""`make demo`: the whole product in one command, through its public interfaces only.

1. builds the seeded synthetic world (or imports MovieLens when DATA=path is given) into a
   fresh data directory (default .winnow/demo),
2. evaluates the retrieval models on a temporal split and prints the comparison table,
3. trains and activates a model bundle,
4. starts `winnow serve` on localhost:8000, shows a few users' recommendations with titles,
   and prints curl lines that work against it. The service keeps running until Ctrl-C
   (DEMO_SERVE=0: stop after printing, e.g. for tests).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

HOME = Path(os.environ.get("DEMO_HOME", ".winnow/demo"))
PORT = int(os.environ.get("DEMO_PORT", "8000"))
DATA = os.environ.get("DATA", "")


def _winnow(*args: str) -> None:
    cmd = [sys.executable, "-m", "winnow", "--home", str(HOME), *args]
    print(f"\n$ winnow --home {HOME} {' '.join(args)}", flush=True)
    subprocess.run(cmd, check=True)


def _wait_ready(base: str, proc: subprocess.Popen, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"winnow serve exited with code {proc.returncode}")
        try:
            if httpx.get(f"{base}/readyz", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise SystemExit(f"winnow serve did not become ready within {timeout:.0f} s")


def _show_recommendations(base: str, users: list[str]) -> str:
    """Print each user's top 5 with titles; returns the first item shown (for the curl lines)."""
    first = ""
    for user in users:
        resp = httpx.get(f"{base}/v1/users/{user}/recommendations", params={"k": 5}, timeout=10.0)
        resp.raise_for_status()
        body = resp.json()
        print(f"\nuser {user} (model {body.get('model_version')}):")
        for item in body["items"]:
            first = first or item["item_id"]
            meta = httpx.get(f"{base}/v1/items/{item['item_id']}", timeout=5.0)
            title = meta.json().get("title", "") if meta.status_code == 200 else ""
            print(f"  {item['position'] + 1:>2}. {item['item_id']:<8} {title[:60]:<60} "
                  f"score={item['score']:.3f} via {','.join(item.get('sources', []))}")
    return first


def _active_users(n: int) -> list[str]:
    """The ``n`` users with the most events (read-only, through the public store API)."""
    import numpy as np

    from winnow.core.config import load_config
    from winnow.data.open_store import open_store

    store = open_store(load_config(HOME).store_url())
    try:
        log = store.read_events()
    finally:
        store.close()
    counts = np.bincount(log.user, minlength=len(log.user_ids))
    return [log.user_ids[i] for i in np.argsort(-counts, kind="stable")[:n]]


def main() -> None:
    if HOME.exists():
        shutil.rmtree(HOME)
    HOME.mkdir(parents=True)
    # a local demo runs without API keys; production keeps the default (auth = true, docs/HARDENING.md)
    (HOME / "winnow.toml").write_text("[security]\nauth = false\n", encoding="utf-8")
    if DATA:
        _winnow("import", "movielens", DATA)
    else:
        _winnow("import", "synthetic", "--users", "2000", "--items", "1000", "--events", "100000")
    _winnow("evaluate", "--dataset", "store", "--protocol", "temporal",
            "--models", "popularity,itemitem,als,bpr,ease", "--k", "10")
    _winnow("train")
    base = f"http://127.0.0.1:{PORT}"
    print(f"\n$ winnow --home {HOME} serve --port {PORT}", flush=True)
    proc = subprocess.Popen([sys.executable, "-m", "winnow", "--home", str(HOME), "serve",
                             "--port", str(PORT)])
    try:
        _wait_ready(base, proc)
        sample = _active_users(3)
        item = _show_recommendations(base, sample)
        u = sample[0]
        print(f"""
The service is running on {base} (OpenAPI docs: {base}/docs). Try:
  curl -s '{base}/v1/users/{u}/recommendations?k=5&explain=true'
  curl -s -X POST {base}/v1/events -H 'content-type: application/json' \\
       -d '{{"events": [{{"user_id": "{u}", "item_id": "{item}", "event_type": "purchase", "timestamp": {int(time.time())}}}]}}'
  curl -s '{base}/v1/items/{item}/similar?k=5'
  curl -s {base}/metrics | head
""", flush=True)
        if os.environ.get("DEMO_SERVE", "1") == "0":
            return
        print("Ctrl-C stops the service.", flush=True)
        proc.wait()
    except KeyboardInterrupt:
        pass
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


if __name__ == "__main__":
    main()
