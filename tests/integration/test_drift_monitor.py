"""The drift monitor process (``winnow drift monitor``, serving/drift_monitor.py) and a service's
reader of its result (serving/drift_reader.py) against a trained bundle: a concept shift written
to the store after start-up -- users click the same items as before, but the slates the service
showed no longer contain them -- is flagged as CONCEPT drift (not data drift) within a bounded
deadline, waited on a condition; before it, an empty live window flags nothing and says why; the
service itself never compares (``computed_here`` 0, ``computed_by`` the monitor's pid); close()
joins the reader thread; [drift] monitor = "off" runs no reader and the route says so."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from servers.throwaway import wait_for

from winnow.core.config import load_config
from winnow.data.open_store import open_store

HOUR = 3600
TOML = """
[ranker]
enabled = false
[drift]
window_days = 0.5
refresh_s = 0.2
max_duty = 1.0  # the refresh period under test, not the duty bound (tests/unit/test_drift_monitor_duty.py)
"""


def _day(store, *, start: int, shown_offset: int, first_id: int) -> None:
    """60 users each click 6 of 30 items over 10 hours from ``start``; every click follows a slate
    that showed item + ``shown_offset`` (0: the clicked item itself)."""
    events, imps = [], []
    n = first_id
    for u in range(60):
        for j in range(6):
            item = (u + j) % 30
            t = start + u * 500 + j * 60
            rid = f"r{n}"
            imps.append({"request_id": rid, "user_id": f"u{u}", "timestamp": t, "context": {},
                         "model_version": "old", "items": [{"item_id": f"i{item + shown_offset}", "position": 0,
                                                            "score": 1.0, "propensity": 1.0}]})
            events.append({"user_id": f"u{u}", "item_id": f"i{item}", "event_type": "click", "value": np.nan,
                           "timestamp": t + 5, "event_id": f"e{n}", "context": json.dumps({"request_id": rid})})
            n += 1
    store.log_impressions(imps)
    store.append_events(pd.DataFrame(events))


def test_a_concept_shift_written_after_start_up_is_flagged_as_concept_drift(tmp_path: Path) -> None:
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    from winnow.serving.service import Service
    from winnow.training.job import train

    (tmp_path / "winnow.toml").write_text(TOML)
    cfg = load_config(tmp_path)
    now = int(time.time())
    cut = now - 12 * HOUR  # reference: the 12 hours before the cut; live: the 12 hours before now
    store = open_store(cfg.store_url())
    try:
        _day(store, start=cut - 11 * HOUR, shown_offset=0, first_id=0)
        info = train(cfg, store, evaluate_models=False, until=cut)
    finally:
        store.close()
    svc = Service(load_config(tmp_path))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    monitor = subprocess.Popen([sys.executable, "-m", "winnow", "--home", str(tmp_path), "drift", "monitor"],
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert svc.drift is not None and svc.serving_version == info.version

        def refreshed_after(n: int):
            snap = svc.drift.snapshot() if svc.drift is not None else None
            return snap if snap and snap["refreshes"] > n and snap["report"] is not None else None

        snap = wait_for(lambda: refreshed_after(0), timeout=30, interval=0.05)
        assert snap, svc.drift.snapshot()
        assert snap["computed_by"] == monitor.pid and snap["computed_here"] == 0  # the service never compares
        rep = snap["report"]  # nothing in the live window yet: nothing flagged, and it says why
        assert rep["live"]["events"] == 0 and not rep["data_drift"] and not rep["concept_drift"]
        assert rep["notes"] == ["no events in the live window"]
        # the shift, written by "another worker": same users, same items clicked, other items shown
        _day(svc.store, start=now - 11 * HOUR, shown_offset=1000, first_id=10_000)

        def flagged():
            s = svc.drift.snapshot() if svc.drift is not None else None
            r = s and s["report"]
            return s if r and r["live"]["events"] > 0 and r["concept_drift"] else None

        snap = wait_for(flagged, timeout=30, interval=0.05)
        assert snap, svc.drift.snapshot()
        rep = snap["report"]
        hit = next(r for r in rep["concept"] if r["name"] == "served_hit_share")
        assert hit["value"] == 1.0 and hit["drifted"]  # every click followed its item before, none now
        assert rep["data_drift"] is False, rep["data"]  # the inputs did not move
        text = svc.metrics.registry.get_sample_value("winnow_drift_detected", {"kind": "concept"})
        assert text == 1.0
        assert svc.metrics.registry.get_sample_value("winnow_drift_detected", {"kind": "data"}) == 0.0
    finally:
        monitor.terminate()
        monitor.wait(30)
        t0 = time.monotonic()
        svc.close()
    assert time.monotonic() - t0 < 10 and not svc.drift._thread.is_alive()  # joined, bounded


def test_monitor_off_runs_no_reader_and_the_route_says_so(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from winnow.serving.app import create_app

    (tmp_path / "winnow.toml").write_text('[drift]\nmonitor = "off"\n[security]\nauth = false\n')
    app = create_app(load_config(tmp_path))
    with TestClient(app) as client:
        assert app.state.service.drift is None
        r = client.get("/v1/admin/drift")
        assert r.status_code == 404 and '[drift] monitor = "off"' in r.json()["detail"]
