"""Warm starts end to end: `winnow train --warm-from` on a grown store, the autopilot's fit stage
continuing from the champion (``[training] warm_start = "active"``), and a bad --warm-from."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
from typer.testing import CliRunner

from serve_harness import trained_home
from winnow.bundle import active_version, bundles_dir, sha256_file
from winnow.cli import app
from winnow.core.config import load_config
from winnow.data.open_store import open_store
from winnow.lifecycle.cycle import run_once

FAST = "[ranker]\nenabled = false\n"


def _manifest(home: Path, version: str) -> dict:
    return json.loads((bundles_dir(home) / version / "manifest.json").read_text())


def _grow(home: Path, after: int, n: int = 400) -> None:
    """Append ``n`` events after time ``after``: half on 20 new items by 10 new users."""
    cfg = load_config(home)
    store = open_store(cfg.store_url())
    try:
        old = store.read_events()
        users = [old.user_ids[int(u)] for u in old.user[-n // 2:]] + [f"new-user-{i % 10}" for i in range(n // 2)]
        items = [old.item_ids[int(i)] for i in old.item[-n // 2:]] + [f"new-item-{i % 20}" for i in range(n // 2)]
        store.append_events(pd.DataFrame({"user_id": users, "item_id": items, "event_type": "click",
                                          "timestamp": [after + 3600 + i for i in range(n)],
                                          "event_id": [f"grow{after}-{i}" for i in range(n)]}))
    finally:
        store.close()


def test_train_warm_from_active_continues_from_it_and_the_manifest_says_so(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    cfg, _, first = trained_home(home, FAST, n_users=200, n_items=300, n_events=12_000)
    assert _manifest(home, first.version)["warm_start"] == {
        "source": None, "reason": "warm start off",
        "components": {"als": {"mode": "cold", "from": None, "reason": "warm start off", "iterations": 15}}}
    _grow(home, first.manifest["data"]["until"])
    res = CliRunner().invoke(app, ["--home", str(home), "train", "--warm-from", "active"])
    assert res.exit_code == 0, res.output
    assert f"warm start from bundle {first.version}" in res.output
    m = _manifest(home, active_version(home))
    src = {"version": first.version, "sha256": sha256_file(bundles_dir(home) / first.version / "manifest.json")}
    assert m["warm_start"]["source"] == src
    als = m["warm_start"]["components"]["als"]
    n_prev = first.manifest["data"]["items"]
    assert als == {"mode": "warm", "from": src, "iterations": cfg.models.als.warm_iterations,
                   "users": {"carried": first.manifest["data"]["users"], "new": 10},
                   "items": {"carried": n_prev, "new": 20}}
    assert m["data"]["items"] == n_prev + 20

    # a factor count the previous bundle does not have: cold, and the manifest says why
    (home / "winnow.toml").write_text(FAST + "[models.als]\nfactors = 8\n")
    res = CliRunner().invoke(app, ["--home", str(home), "train", "--warm-from", str(bundles_dir(home) / first.version)])
    assert res.exit_code == 0, res.output
    als = _manifest(home, active_version(home))["warm_start"]["components"]["als"]
    assert als["mode"] == "cold" and als["from"] == src and als["iterations"] == 15
    assert als["reason"] == "factors changed: the previous model has 32, [models.als] factors = 8"


def test_a_bad_warm_from_is_a_clear_error_and_trains_nothing(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    trained_home(home, FAST, n_users=50, n_items=60, n_events=800, train=False)
    for bad, says in ((tmp_path / "no-such-bundle", "is neither \"active\" nor a bundle directory"),
                      (tmp_path, "manifest.json: missing")):
        out = subprocess.run([sys.executable, "-m", "winnow", "--home", str(home), "train", "--warm-from", str(bad)],
                             capture_output=True, text=True, timeout=300)
        assert out.returncode == 2, out.stderr
        assert out.stderr.strip().splitlines()[-1].startswith("error: ") and says in out.stderr, out.stderr
        assert "warm start" in out.stderr
    assert not bundles_dir(home).exists() or not any(p.name[0].isdigit() for p in bundles_dir(home).iterdir())


def _cycle(home: Path):
    cfg = load_config(home)
    store = open_store(cfg.store_url())
    try:
        return run_once(cfg, store, say=lambda _m: None)
    finally:
        store.close()


def test_the_autopilot_fit_continues_from_the_champion_that_never_saw_its_holdout(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    _, _, champion = trained_home(home, FAST + "[training]\nwarm_start = \"active\"\n",
                                  n_users=200, n_items=300, n_events=12_000)
    out = _cycle(home)
    fit = out.record["stages"]["fit"]["outputs"]
    # the champion of `winnow train` trained on this cycle's holdout: continuing from it would leak
    assert fit["warm_from"] is None
    ws = _manifest(home, fit["version"])["warm_start"]
    assert ws["source"] is None and f"bundle {champion.version} trained on events up to" in ws["reason"]
    assert "leak the holdout window" in ws["components"]["als"]["reason"]
    assert out.record["stages"]["gate"]["outputs"]["passed"] is True
    challenger = fit["version"]
    assert active_version(home) == challenger

    _grow(home, out.record["stages"]["snapshot"]["outputs"]["cut"])
    out2 = _cycle(home)
    fit2 = out2.record["stages"]["fit"]["outputs"]
    src = {"version": challenger, "sha256": sha256_file(bundles_dir(home) / challenger / "manifest.json")}
    assert fit2["warm_from"] == src
    als = _manifest(home, fit2["version"])["warm_start"]["components"]["als"]
    assert als["mode"] == "warm" and als["from"] == src and als["items"]["carried"] > 0
