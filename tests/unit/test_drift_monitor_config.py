"""``[drift] monitor`` (winnow.core.config_lifecycle.DriftConfig): "process" | "external" | "off",
the old booleans still load (true = "process", false = "off", also as environment strings),
anything else is refused naming the key; and the autopilot's drift trigger uses the home's
monitor result only when it is fresh for its check (winnow.lifecycle.drift_trigger)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from winnow.core.config import load_config
from winnow.core.errors import ConfigError
from winnow.data.open_store import open_store
from winnow.evaluation.drift_shared import SharedResult
from winnow.lifecycle.drift_trigger import DriftWatch

VERSION = "20261205T120000Z-abcdef"


@pytest.mark.parametrize(("toml", "mode"), [("", "process"), ('monitor = "external"', "external"),
                                            ('monitor = "off"', "off"), ("monitor = true", "process"),
                                            ("monitor = false", "off")])
def test_monitor_modes_and_the_old_booleans(tmp_path: Path, toml: str, mode: str) -> None:
    (tmp_path / "winnow.toml").write_text(f"[drift]\n{toml}\n")
    assert load_config(tmp_path).drift.monitor == mode


@pytest.mark.parametrize(("env", "mode"), [("false", "off"), ("true", "process"), ("external", "external")])
def test_monitor_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, env: str, mode: str) -> None:
    monkeypatch.setenv("WINNOW__DRIFT__MONITOR", env)
    assert load_config(tmp_path).drift.monitor == mode


def test_a_bad_monitor_value_names_the_key(tmp_path: Path) -> None:
    (tmp_path / "winnow.toml").write_text('[drift]\nmonitor = "thread"\n')
    with pytest.raises(ConfigError, match=r"drift\.monitor"):
        load_config(tmp_path)


def _home(tmp_path: Path, refresh_s: float) -> Path:
    (tmp_path / "winnow.toml").write_text(f"[drift]\nrefresh_s = {refresh_s}\n[lifecycle]\ndrift_trigger = \"data\"\n"
                                          "drift_check_s = 1.0\ndrift_min_events = 10\n")
    (tmp_path / "bundles").mkdir()
    (tmp_path / "bundles" / "ACTIVE").write_text(VERSION)  # no bundle files: computing would fail
    return tmp_path


def _shared(home: Path, *, computed_at: float, window_end: int, bundle: str = VERSION) -> None:
    rep = {"bundle": bundle, "live": {"window": [window_end - 3600, window_end], "events": 500},
           "data": [{"name": "item_popularity", "statistic": "psi", "value": 0.9, "threshold": 0.2, "drifted": True}],
           "concept": [], "data_drift": True, "concept_drift": False, "concept_note": "", "notes": []}
    shared = SharedResult(home)
    with shared.lock() as held:
        assert held
        shared.write({"bundle": bundle, "state": "ok", "error": None, "computed_at": computed_at,
                      "attempted_at": computed_at, "report": rep, "computations": 1, "computed_by": 1, "history": []})


def test_the_trigger_uses_a_fresh_monitor_result_instead_of_computing(tmp_path: Path) -> None:
    home = _home(tmp_path, refresh_s=60)
    now = time.time()
    _shared(home, computed_at=now - 30, window_end=int(now) - 30)
    cfg = load_config(home)
    store = open_store(cfg.store_url())
    try:
        watch = DriftWatch(cfg)
        reason = watch.check(store, until=int(now), now=1000.0)
    finally:
        store.close()
    # computing would have failed (the ACTIVE bundle has no files): the monitor's report was used
    assert watch.last_error is None and watch.last is not None and watch.last["source"] == "monitor"
    assert reason is not None and "item_popularity psi 0.900 > 0.2" in reason and "500 live events" in reason
    assert reason.endswith("[report: monitor]")


@pytest.mark.parametrize("case", ["stale", "other_window", "other_bundle"])
def test_the_trigger_computes_its_own_when_the_monitor_result_is_not_fresh(tmp_path: Path, case: str) -> None:
    home = _home(tmp_path, refresh_s=60)
    now = time.time()
    if case == "stale":  # older than 2 x refresh_s
        _shared(home, computed_at=now - 130, window_end=int(now))
    elif case == "other_window":  # the newest event is far from the monitor's window end (an idle store)
        _shared(home, computed_at=now - 5, window_end=int(now) + 3600)
    else:
        _shared(home, computed_at=now - 5, window_end=int(now), bundle="20261205T110000Z-123456")
    cfg = load_config(home)
    store = open_store(cfg.store_url())
    try:
        watch = DriftWatch(cfg)
        assert watch.check(store, until=int(now), now=1000.0) is None
    finally:
        store.close()
    assert watch.last is None and watch.last_error is not None  # it tried to compute (and could not)
