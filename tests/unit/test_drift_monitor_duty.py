"""The drift monitor's duty bound: a comparison that cost C seconds of CPU is followed by the
next scheduled one no sooner than C / [drift] max_duty (never sooner than refresh_s), so the
monitor's share of a core stays bounded as the window's traffic grows; an explicit refresh is
not delayed. (No bundle is active here: a comparison writes state "no_bundle" and reads no store.)"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from winnow.core.config import load_config
from winnow.core.errors import ConfigError
from winnow.serving.drift_monitor import Monitor


def _monitor(home: Path, max_duty: float) -> Monitor:
    config = load_config(home, environ={}, overrides={"drift": {"refresh_s": 2.0, "max_duty": max_duty}})
    return Monitor(config, store=None)  # type: ignore[arg-type]  # no bundle: the store is never read


def _last(mon: Monitor, *, ago_s: float, cpu_s: float) -> None:
    mon.shared.dir.mkdir(parents=True, exist_ok=True)
    mon.shared.write({"bundle": None, "state": "no_bundle", "attempted_at": time.time() - ago_s,
                      "started_at": time.time() - ago_s, "computations": 1, "compute_cpu_s": cpu_s})


def test_an_expensive_comparison_stretches_the_interval(tmp_path: Path) -> None:
    mon = _monitor(tmp_path, max_duty=0.1)
    _last(mon, ago_s=3.0, cpu_s=1.0)  # refresh_s (2 s) has passed; 1 s CPU / 0.1 = 10 s has not
    wait = mon.step()
    assert mon.computed_here == 0
    assert 6.0 < wait <= 7.0
    mon.step(force=True)  # an explicit refresh is not delayed
    assert mon.computed_here == 1
    doc = mon.shared.read()
    assert doc is not None and doc["state"] == "no_bundle" and doc["compute_cpu_s"] >= 0
    assert doc["interval_s"] == pytest.approx(max(2.0, doc["compute_cpu_s"] / 0.1))


def test_a_cheap_comparison_keeps_refresh_s(tmp_path: Path) -> None:
    mon = _monitor(tmp_path, max_duty=0.1)
    _last(mon, ago_s=3.0, cpu_s=0.05)  # 0.05 / 0.1 = 0.5 s < refresh_s: due after 2 s, so now
    assert mon.step() == pytest.approx(2.0, abs=0.5)
    assert mon.computed_here == 1


def test_max_duty_is_validated(tmp_path: Path) -> None:
    for bad in (0.0, 1.5):
        with pytest.raises(ConfigError, match="max_duty"):
            _monitor(tmp_path, max_duty=bad)
