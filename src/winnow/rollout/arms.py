"""Each arm of a rollout, measured from the store: requests, guardrail rates, exposed users and
the primary metric per user.

Source: the impression log. The service logs every request served during a rollout with
``context.rollout = {"id", "arm", "ms", "error", "fallbacks"}`` (winnow.serving.service), and
events carrying the impression's ``request_id`` are its outcomes (``Store.impression_outcomes``).
The randomisation unit is the user: the primary metric is per exposed user (CTR = items clicked /
items shown over all the user's slates in the rollout; conversion_rate likewise with purchases).
A user who changed arms (a champion user moved to the challenger when the share grew) is left
out of the metric (counted in ``switched``): their outcomes mix both models.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from winnow.data.rollouts import Rollout
from winnow.data.store import Store
from winnow.rollout.assign import CHALLENGER, CHAMPION

ARMS = (CHAMPION, CHALLENGER)
NORMAL_FALLBACKS = frozenset({"cold_start"})  # expected for new users: not a guardrail signal


@dataclass
class Arm:
    """One arm's totals since the rollout started."""

    requests: int = 0
    errors: int = 0
    empty: int = 0
    fallback: int = 0
    latency_ms: list[float] = field(default_factory=list)
    users: set[str] = field(default_factory=set)
    new_in_step: int = 0  # users whose first request fell in the current step (SRM)
    values: np.ndarray = field(default_factory=lambda: np.empty(0))  # primary metric per user
    slates: list[tuple[str, ...]] = field(default_factory=list)  # item ids served, per request, in time order

    def rates(self) -> dict[str, Any]:
        n = self.requests
        lat = np.asarray(self.latency_ms, np.float64)
        return {"requests": n, "exposed_users": len(self.users),
                "error_rate": self.errors / n if n else None, "empty_rate": self.empty / n if n else None,
                "fallback_rate": self.fallback / n if n else None,
                "p99_ms": float(np.percentile(lat, 99)) if len(lat) else None,
                "distinct_items": len({i for slate in self.slates for i in slate}),
                "metric_users": int(len(self.values)),
                "metric_mean": float(self.values.mean()) if len(self.values) else None}


def collect(store: Store, r: Rollout, *, click_events: tuple[str, ...] = ("click",),
            purchase_events: tuple[str, ...] = ("purchase",)) -> tuple[dict[str, Arm], int]:
    """(arm name -> Arm, users who switched arms) for rollout ``r`` from the store."""
    arms = {a: Arm() for a in ARMS}
    first_seen: dict[str, tuple[int, str]] = {}
    user_arms: dict[str, set[str]] = {}
    shown: dict[tuple[str, str], float] = {}
    requests: dict[str, tuple[str, str]] = {}
    for imp in store.read_impressions(since=r.started):
        ro = (imp.get("context") or {}).get("rollout") or {}
        if ro.get("id") != r.id or ro.get("arm") not in arms:
            continue
        arm, uid = ro["arm"], str(imp["user_id"])
        a = arms[arm]
        a.requests += 1
        a.errors += bool(ro.get("error"))
        a.empty += not imp["items"]
        a.fallback += any(f not in NORMAL_FALLBACKS for f in ro.get("fallbacks") or [])
        if ro.get("ms") is not None:
            a.latency_ms.append(float(ro["ms"]))
        a.users.add(uid)
        a.slates.append(tuple(str(it["item_id"]) for it in imp["items"]))
        first_seen.setdefault(uid, (int(imp["timestamp"]), arm))
        user_arms.setdefault(uid, set()).add(arm)
        shown[(uid, arm)] = shown.get((uid, arm), 0.0) + len(imp["items"])
        requests[imp["request_id"]] = (uid, arm)
    for ts, arm in first_seen.values():
        if ts >= r.step_started:
            arms[arm].new_in_step += 1
    wanted = set(purchase_events if r.params.get("metric") == "conversion_rate" else click_events)
    hits: dict[tuple[str, str], float] = {}
    if requests:
        out = store.impression_outcomes(since=r.started)
        if len(out):
            for req, events in zip(out["request_id"], out["events"], strict=True):
                key = requests.get(req)
                if key is not None and wanted & set(events or ()):
                    hits[key] = hits.get(key, 0.0) + 1.0
    switched = {u for u, s in user_arms.items() if len(s) > 1}
    for arm in ARMS:
        vals = [hits.get((u, arm), 0.0) / shown[(u, arm)] for u in arms[arm].users
                if u not in switched and shown.get((u, arm), 0) > 0]
        arms[arm].values = np.asarray(vals, np.float64)
    return arms, len(switched)
