"""The canary's incremental arm aggregates (winnow.rollout.arms.ArmTracker) equal a full
recomputation on random logs, on every backend in STORE_FACTORIES (SQLite and a real PostgreSQL).

Each round logs impressions (of this rollout's two arms, of another rollout, without a rollout)
and click / purchase / view events carrying request ids: on this round's requests, late ones on
earlier rounds', early ones on requests of two rounds later (logged before their impression), on unknown
requests, on items the slate did not show, and duplicates. After every round the tracker looks
once (reading only what is new) and must equal a brute-force computation written here from the
generated rows, and ``collect`` (a fresh tracker reading everything); and it reads no more than
the rows stored since the look before (its watermark)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_store_contract import STORE_FACTORIES

from winnow.data.rollouts import Rollout, RolloutDecision
from winnow.data.store import Store
from winnow.rollout.arms import NORMAL_FALLBACKS, ArmTracker, collect

T0 = 1_000_000


@pytest.fixture(params=sorted(STORE_FACTORIES))
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    s = STORE_FACTORIES[request.param](request, tmp_path)()
    yield s
    s.close()


def _impressions(rng: np.random.Generator, rid: int, rnd: int, n: int) -> list[dict]:
    out = []
    for j in range(n):
        items = [f"i{x}" for x in rng.choice(40, size=int(rng.integers(0, 8)), replace=False)]
        ro = {"id": rid if rng.random() < 0.9 else rid + 1, "arm": str(rng.choice(["champion", "challenger"])),
              "ms": float(rng.gamma(2.0, 3.0)), "error": bool(rng.random() < 0.05),
              "fallbacks": list(rng.choice(["cold_start", "popularity"], size=int(rng.integers(0, 2))))}
        ctx = {"rollout": ro} if rng.random() < 0.95 else {}
        out.append({"request_id": f"q{rnd}-{j}", "user_id": f"u{int(rng.integers(0, 60))}",
                    "timestamp": T0 + rnd * 100 - 30 + int(rng.integers(0, 120)), "model_version": "v",
                    "surface": "home", "context": ctx,
                    "items": [{"item_id": it, "position": p, "score": 1.0} for p, it in enumerate(items)]})
    return out


def _events(rng: np.random.Generator, targets: list[dict], rnd: int, n: int) -> pd.DataFrame:
    rows = []
    for _ in range(n):
        imp = targets[int(rng.integers(0, len(targets)))]
        shown = [it["item_id"] for it in imp["items"]]
        item = str(rng.choice(shown)) if shown and rng.random() < 0.8 else f"i{int(rng.integers(0, 40))}"
        req = imp["request_id"] if rng.random() < 0.95 else "unknown-request"
        rows.append({"user_id": imp["user_id"], "item_id": item,
                     "event_type": str(rng.choice(["click", "click", "purchase", "view"])),
                     "timestamp": T0 + rnd * 100 + 95, "context": json.dumps({"request_id": req})})
    return pd.DataFrame(rows)


def _reference(r: Rollout, imps: list[dict], events: list[pd.DataFrame], step_started: int) -> dict:
    """The arms computed by brute force from everything logged so far."""
    mine = [i for i in imps if (i["context"].get("rollout") or {}).get("id") == r.id and i["timestamp"] >= r.started]
    ev = pd.concat(events) if events else pd.DataFrame(columns=["event_type", "context", "item_id"])
    clicked = {(json.loads(c)["request_id"], it) for t, c, it in zip(ev["event_type"], ev["context"], ev["item_id"])
               if t == "click"}
    out: dict = {}
    first: dict[str, tuple[int, str]] = {}
    arms_of: dict[str, set] = {}
    shown: dict = {}
    hits: dict = {}
    for arm in ("champion", "challenger"):
        rows = [i for i in mine if i["context"]["rollout"]["arm"] == arm]
        out[arm] = {"requests": len(rows), "errors": sum(i["context"]["rollout"]["error"] for i in rows),
                    "empty": sum(not i["items"] for i in rows),
                    "fallback": sum(any(f not in NORMAL_FALLBACKS for f in i["context"]["rollout"]["fallbacks"])
                                    for i in rows),
                    "latency": sorted(i["context"]["rollout"]["ms"] for i in rows),
                    "users": {i["user_id"] for i in rows},
                    "slates": sorted(tuple(it["item_id"] for it in i["items"]) for i in rows)}
        per_user: dict[str, list[int]] = {}  # user -> requests, errors, empty, fallbacks (RATE_COLUMNS)
        for i in rows:
            ro = i["context"]["rollout"]
            row = per_user.setdefault(i["user_id"], [0, 0, 0, 0])
            for col, hit in enumerate((True, ro["error"], not i["items"],
                                       any(f not in NORMAL_FALLBACKS for f in ro["fallbacks"]))):
                row[col] += int(hit)
        out[arm]["per_user"] = sorted(tuple(r) for r in per_user.values())
    for i in sorted(mine, key=lambda i: i["timestamp"]):
        u, arm = i["user_id"], i["context"]["rollout"]["arm"]
        first.setdefault(u, (i["timestamp"], arm))
        arms_of.setdefault(u, set()).add(arm)
        shown[(u, arm)] = shown.get((u, arm), 0) + len(i["items"])
        hits[(u, arm)] = hits.get((u, arm), 0) + sum((i["request_id"], it["item_id"]) in clicked for it in i["items"])
    switched = {u for u, s in arms_of.items() if len(s) > 1}
    for arm in ("champion", "challenger"):
        out[arm]["new_in_step"] = sum(1 for ts, a in first.values() if a == arm and ts >= step_started)
        out[arm]["values"] = sorted(hits.get((u, arm), 0) / shown[(u, arm)] for u in out[arm]["users"]
                                    if u not in switched and shown.get((u, arm), 0) > 0)
    out["switched"] = len(switched)
    return out


def _shape(arms: dict, switched: int) -> dict:
    out = {arm: {"requests": a.requests, "errors": a.errors, "empty": a.empty, "fallback": a.fallback,
                 "latency": sorted(a.latency_ms), "users": set(a.users), "slates": sorted(a.slates),
                 "new_in_step": a.new_in_step, "values": sorted(a.values.tolist()),
                 "per_user": sorted(tuple(r) for r in a.per_user.tolist())}
           for arm, a in arms.items()}
    out["switched"] = switched
    return out


def _close(got: dict, want: dict) -> None:
    for arm in ("champion", "challenger"):
        for key, value in want[arm].items():
            if key in ("latency", "values"):
                assert got[arm][key] == pytest.approx(value), (arm, key)
            else:
                assert got[arm][key] == value, (arm, key)
    assert got["switched"] == want["switched"]


@pytest.mark.parametrize("seed", [0, 1])
def test_incremental_aggregates_equal_the_full_recomputation(store: Store, seed: int) -> None:
    rng = np.random.default_rng(seed)
    r = store.start_rollout(Rollout(
        id=0, state="canary", revision=0, started=T0, challenger="20260101T000000Z-aaaaaa",
        champion="20251201T000000Z-bbbbbb", mode="canary", plan=(50, 100), step_started=T0,
        params={"metric": "ctr"}, decisions=(RolloutDecision(T0, 0, "operator", "start", {}),)))
    tracker = ArmTracker(r, lag_s=150.0)  # looks 100 s apart: each re-reads the previous look's rows
    logged: list[dict] = []
    events: list[pd.DataFrame] = []
    rounds = 8
    planned = [_impressions(rng, r.id, rnd, 40) for rnd in range(rounds)]
    for rnd in range(rounds):
        if rnd + 2 < rounds:  # clicks logged two looks before their impression (it waits, pending)
            early = _events(rng, planned[rnd + 2], rnd, 5)
            store.append_events(early)
            events.append(early)
        store.log_impressions(planned[rnd])
        logged.extend(planned[rnd])
        late = _events(rng, logged, rnd, 60)  # this round's and earlier rounds' requests
        store.append_events(late)
        events.append(late)
        tracker.update(store, now=T0 + rnd * 100 + 99)
        assert tracker.rows_read <= 2 * (40 + 65), "a look read more than the last two rounds' rows"
        step_started = T0 + (rnd // 2) * 100
        want = _reference(r, logged, events, step_started)
        with tracker.lock:
            got = _shape(*tracker.arms(step_started))
        _close(got, want)
        _close(_shape(*collect(store, replace(r, step_started=step_started))), want)
    assert tracker.looks == rounds and want["challenger"]["requests"] > 50
    assert any(v > 0 for v in want["challenger"]["values"])  # clicks were counted at all
    assert want["switched"] > 0 and want["challenger"]["new_in_step"] > 0
