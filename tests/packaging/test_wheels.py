"""Both distributions as users get them: wheels built from this tree, installed into FRESH venvs
(no system site-packages, nothing of the test venv), then `winnow --help`, import + train +
serve of a tiny world with the CORE install (no extras), a feature whose extra is missing
refused at start-up with the pip command, and winnow-client (httpx + pydantic only) against it.

Offline: the venvs install with ``--no-index`` from a wheelhouse of the pinned dependencies
($WINNOW_WHEELHOUSE, default ~/.cache/winnow/wheelhouse). A run that finds it incomplete fills it
once with ``pip download`` through pip's configured indexes (the local index and registry, as
`make install` uses them); later runs need no network. Each step's seconds are printed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from servers.throwaway import wait_for

REPO = Path(__file__).resolve().parents[2]
WHEELHOUSE = Path(os.environ.get("WINNOW_WHEELHOUSE", Path.home() / ".cache" / "winnow" / "wheelhouse"))
ENV = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "OPENBLAS_NUM_THREADS": "1", "PYTHONPATH": ""}
ENV.pop("PYTHONHOME", None)
ENV.pop("VIRTUAL_ENV", None)
TIMES: dict[str, float] = {}

CLIENT_SCRIPT = r'''
import asyncio, json, sys
from winnow_client import AsyncClient, Client, Event, TrackerOptions
url, key = sys.argv[1], sys.argv[2]
out = {}
with Client(url, api_key=key, tracker=TrackerOptions(batch_size=50, flush_interval=0.1)) as c:
    out["health"] = c.health().status
    slate = c.recommend("u1", k=5)
    out["slate"] = slate.item_ids
    r = c.send_events([Event(user_id="pkg-u", item_id=slate.item_ids[0], event_type="click",
                             timestamp="2026-01-01T00:00:00Z", request_id=slate.request_id)])
    out["sent"] = [r.received, r.written]
    for i in range(120):
        c.track("pkg-u", "i%d" % (i % 20), "view")
    out["flushed"] = c.flush(timeout=60)
    out["tracked"] = c.tracker.stats().sent
    out["user_events"] = c.get_user("pkg-u").event_count
async def run():
    async with AsyncClient(url, api_key=key) as a:
        return (await a.similar_items("i1", k=3)).item_id
out["async"] = asyncio.run(run())
print(json.dumps(out))
'''


def _run(args: list[str | Path], *, step: str, timeout: float = 600, **kw) -> subprocess.CompletedProcess[str]:
    t0 = time.monotonic()
    out = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=timeout, env=ENV, **kw)
    TIMES[step] = TIMES.get(step, 0.0) + time.monotonic() - t0
    return out


def _ok(out: subprocess.CompletedProcess[str]) -> str:
    assert out.returncode == 0, f"{out.args}\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out.stdout


def _build(src: Path, dest: Path, step: str) -> Path:
    """A wheel of ``src``, built from a copy of it (the build writes nothing into the tree)."""
    copy = dest / f"src-{src.name}"
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "build", ".venv", ".winnow")
    copy.mkdir()
    for name in ("pyproject.toml", "README.md", "src"):
        if (src / name).is_dir():
            shutil.copytree(src / name, copy / name, ignore=ignore)
        else:
            shutil.copy2(src / name, copy / name)
    _ok(_run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", dest, copy],
             step=step))
    return next(dest.glob(f"{'winnow_client' if src.name == 'python' else 'winnow'}-*.whl"))


def _venv_install(venv: Path, wheel: Path, constraints: Path, step: str) -> Path:
    """A fresh venv (the base interpreter, no system site-packages) with ``wheel`` installed offline."""
    _ok(_run([sys.executable, "-m", "venv", venv], step=step))
    pip = [venv / "bin" / "python", "-m", "pip", "install", "-q", "-c", constraints]
    offline = _run([*pip, "--no-index", "--find-links", WHEELHOUSE, wheel], step=step)
    if offline.returncode != 0:  # first run on this machine: fill the wheelhouse once, then offline
        WHEELHOUSE.mkdir(parents=True, exist_ok=True)
        _ok(_run([sys.executable, "-m", "pip", "download", "-q", "-c", constraints, "-d", WHEELHOUSE, wheel],
                 step="fill wheelhouse (once per machine)"))
        _ok(_run([*pip, "--no-index", "--find-links", WHEELHOUSE, wheel], step=step))
    return venv / "bin"


@pytest.mark.slow
def test_wheels_install_and_work_in_fresh_venvs(tmp_path):
    t_all = time.monotonic()
    constraints = tmp_path / "constraints.txt"  # requirements.txt's pins (pip constraints take no extras)
    constraints.write_text(re.sub(r"\[[^\]]*\]", "", (REPO / "requirements.txt").read_text()))
    dist = tmp_path / "dist"
    dist.mkdir()
    engine_whl = _build(REPO, dist, "build wheels")
    client_whl = _build(REPO / "clients" / "python", dist, "build wheels")

    eng = _venv_install(tmp_path / "engine-venv", engine_whl, constraints, "engine venv (core install)")
    assert "Usage: winnow" in _ok(_run([eng / "winnow", "--help"], step="smoke"))
    installed = _ok(_run([eng / "python", "-m", "pip", "list", "--format=json"], step="smoke"))
    names = {p["name"].lower() for p in json.loads(installed)}
    assert {"winnow", "lightgbm", "faiss-cpu", "fastapi"} <= names
    assert not names & {"torch", "ray", "psycopg", "redis", "sentence-transformers", "pytest"}  # core only

    home = tmp_path / "home"
    w = [eng / "winnow", "--home", home]
    _ok(_run([*w, "import", "synthetic", "--users", "150", "--items", "200", "--events", "4000"], step="smoke"))
    assert "trained and activated bundle" in _ok(_run([*w, "train"], step="smoke"))
    key = _ok(_run([*w, "keys", "create", "--scope", "read,write,admin"], step="smoke")).strip().splitlines()[-1]

    other = tmp_path / "redis-home"  # a feature of an extra that is not installed: refused at start-up
    other.mkdir()
    (other / "winnow.toml").write_text('[online]\nurl = "redis://127.0.0.1:6379/0"\n')
    refused = _run([eng / "winnow", "--home", other, "serve"], step="smoke", timeout=60)
    assert refused.returncode != 0 and "pip install 'winnow[redis]'" in refused.stderr + refused.stdout

    port = _free_port()
    log = open(tmp_path / "serve.log", "wb")
    server = subprocess.Popen([*map(str, w), "serve", "--port", str(port)], env=ENV, stdout=log, stderr=subprocess.STDOUT)
    try:
        cli = _venv_install(tmp_path / "client-venv", client_whl, constraints, "client venv")
        client_pkgs = {p["name"].lower() for p in json.loads(_ok(_run(
            [cli / "python", "-m", "pip", "list", "--format=json"], step="smoke")))}
        assert {"winnow-client", "httpx", "pydantic"} <= client_pkgs
        assert not client_pkgs & {"winnow", "numpy", "fastapi"}  # no engine dependency
        url = f"http://127.0.0.1:{port}"
        assert wait_for(lambda: _ready(cli, url) or server.poll() is not None, timeout=120), "server never ready"
        assert server.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
        out = json.loads(_ok(_run([cli / "python", "-c", CLIENT_SCRIPT, url, key], step="client against serve")))
    finally:
        server.terminate()
        server.wait(30)
        log.close()
    assert out["health"] == "ok" and len(out["slate"]) == 5 and out["sent"] == [1, 1]
    assert out["flushed"] and out["tracked"] == 120 and out["user_events"] == 121 and out["async"] == "i1"
    TIMES["total"] = time.monotonic() - t_all
    print("packaging test seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in TIMES.items()))


def _ready(bin_dir: Path, url: str) -> bool:
    probe = f"import httpx,sys; sys.exit(0 if httpx.get('{url}/readyz', timeout=2).status_code == 200 else 1)"
    try:
        return subprocess.run([str(bin_dir / "python"), "-c", probe], capture_output=True, env=ENV,
                              timeout=10).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
