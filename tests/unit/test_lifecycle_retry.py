"""A failed, resumable autopilot cycle is retried with back-off and gives up after
``[lifecycle] max_attempts`` (winnow.lifecycle.cycle, loop)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from winnow.core.config import load_config
from winnow.core.errors import LifecycleError
from winnow.data.open_store import open_store
from winnow.lifecycle import cycle
from winnow.lifecycle.loop import due
from winnow.cyclelog.record import load_records


def _events(n: int) -> pd.DataFrame:
    return pd.DataFrame({"user_id": [f"u{i % 5}" for i in range(n)], "item_id": [f"i{i % 7}" for i in range(n)],
                         "event_type": "click", "timestamp": [1_000_000 + i for i in range(n)],
                         "event_id": [f"e{i}" for i in range(n)]})


def test_a_failing_cycle_backs_off_doubling_and_gives_up_at_the_attempt_limit(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = load_config(tmp_path, overrides={"lifecycle": {"max_attempts": 3, "retry_backoff_s": 100.0}},
                      environ={})
    store = open_store(cfg.store_url())

    def outage(*_a, **_k):
        raise RuntimeError("injected: the training cluster is down")

    monkeypatch.setattr(cycle.datasets, "build", outage)
    try:
        store.append_events(_events(50))
        for attempt in (1, 2):
            with pytest.raises(LifecycleError, match="stage 'datasets'.*injected"):
                cycle.run_once(cfg, store, say=lambda _m: None)
            rec = load_records(tmp_path)[-1]
            assert rec["attempts"] == attempt and rec["resumable"] is True and "gave_up" not in rec
            failed = rec["failed_at"]
            wait = 100.0 * 2 ** (attempt - 1)  # 100 s, then 200 s
            assert due(cfg, store, [rec], failed + wait - 1) is None  # backing off: nothing else starts
            assert due(cfg, store, [rec], failed + wait).startswith(f"retry cycle {rec['cycle']} (attempt {attempt + 1} of 3")
        with pytest.raises(LifecycleError, match="gave up after 3 attempts"):
            cycle.run_once(cfg, store, say=lambda _m: None)
        records = load_records(tmp_path)
        assert len(records) == 1  # every attempt resumed the same cycle
        rec = records[-1]
        assert rec["attempts"] == 3 and rec["resumable"] is False and rec["gave_up"] is True
        assert rec["stages"]["snapshot"]["runs"] == 1 and rec["stages"]["datasets"]["runs"] == 3
        assert due(cfg, store, [rec], rec["failed_at"] + 1000) is None  # final: no retry (back-off 400 s passed)
        said: list[str] = []
        assert cycle.run_once(cfg, store, say=said.append).status == "unchanged"
        assert "gave up after 3 attempts" in said[-1]
    finally:
        store.close()
