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

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from winnow.data.rollouts import Rollout
from winnow.data.store import Store
from winnow.rollout.assign import CHALLENGER, CHAMPION

ARMS = (CHAMPION, CHALLENGER)
NORMAL_FALLBACKS = frozenset({"cold_start"})  # expected for new users: not a guardrail signal
RATE_COLUMNS = ("requests", "error_rate", "empty_rate", "fallback_rate")  # Arm.per_user's columns


@dataclass
class Arm:
    """One arm's totals since the rollout started; its request, error, empty-slate and fallback
    counts are the sums of ``per_user``'s columns."""

    latency_ms: list[float] = field(default_factory=list)
    users: set[str] = field(default_factory=set)
    new_in_step: int = 0  # users whose first request fell in the current step (SRM)
    values: np.ndarray = field(default_factory=lambda: np.empty(0))  # primary metric per user
    slates: list[tuple[str, ...]] = field(default_factory=list)  # item ids served, per request, in time order
    items: set[str] | None = None  # distinct items served, kept by ArmTracker (else counted from slates)
    # per user of the arm: requests, errors, empty slates, fallbacks (RATE_COLUMNS): the guardrails
    # judge each rate per request with its noise clustered by user (sequential.ratio_msprt)
    per_user: np.ndarray = field(default_factory=lambda: np.zeros((0, len(RATE_COLUMNS)), np.int64))
    _lat_cache: np.ndarray | None = field(default=None, repr=False, compare=False)  # latency_ms as an array

    def _latencies(self) -> np.ndarray:
        """``latency_ms`` as an array, converting only what was appended since the last call
        (a check at a million requests must not rebuild a million-element array each time)."""
        cache = self._lat_cache
        if cache is None or len(cache) > len(self.latency_ms):
            cache = np.asarray(self.latency_ms, np.float64)
        elif len(cache) < len(self.latency_ms):
            cache = np.concatenate([cache, np.asarray(self.latency_ms[len(cache):], np.float64)])
        self._lat_cache = cache
        return cache

    @property
    def requests(self) -> int:
        return int(self.per_user[:, 0].sum())

    @property
    def errors(self) -> int:
        return int(self.per_user[:, 1].sum())

    @property
    def empty(self) -> int:
        return int(self.per_user[:, 2].sum())

    @property
    def fallback(self) -> int:
        return int(self.per_user[:, 3].sum())

    def rate_counts(self, rate: str) -> tuple[np.ndarray, np.ndarray]:
        """(hits, requests) per user for ``rate`` (one of RATE_COLUMNS[1:])."""
        return self.per_user[:, RATE_COLUMNS.index(rate)], self.per_user[:, 0]

    def rates(self) -> dict[str, Any]:
        n = self.requests
        lat = self._latencies()
        return {"requests": n, "exposed_users": len(self.users),
                "error_rate": self.errors / n if n else None, "empty_rate": self.empty / n if n else None,
                "fallback_rate": self.fallback / n if n else None,
                "p99_ms": float(np.percentile(lat, 99)) if len(lat) else None,
                "distinct_items": len(self.items) if self.items is not None else
                len({i for slate in self.slates for i in slate}),
                "metric_users": int(len(self.values)),
                "metric_mean": float(self.values.mean()) if len(self.values) else None}


LAG_S = 10.0  # each look re-reads the rows stored since the watermark of a look this old (late commits)
PENDING_S = 300.0  # an event whose impression is not stored yet waits this long for it


class ArmTracker:
    """Each arm's aggregates for one rollout, kept incrementally: ``update`` reads only the
    impressions and the events with a request id stored since the previous look (by the store's
    sequence numbers, ``Store.impressions_after`` / ``Store.request_events``), so a check costs
    O(new rows) in store reads instead of O(the rollout's rows); ``arms`` then builds the arms
    from the running totals (vectorised over per-user arrays, no store read).

    Equal to reading everything at once (``collect``; tests/contract/test_rollout_arms_incremental.py):
    an impression is counted once (its request id is remembered), a hit once per (request, shown
    item) pair, an event whose impression is not stored yet waits ``PENDING_S`` for it. An
    impression written late (a store outage) gets a new sequence number, so it is still read.
    PostgreSQL numbers rows before they commit: each look re-reads from the watermark of a look
    at least ``lag_s`` old (the first look's while none is; deduplicated), so only a row
    committed more than ``lag_s`` after it was numbered (or, in a process's first ``lag_s``,
    numbered before and committed after its first look) could be missed. Thread-safe: hold ``lock`` while reading the arms."""

    def __init__(self, r: Rollout, *, click_events: tuple[str, ...] = ("click",),
                 purchase_events: tuple[str, ...] = ("purchase",), lag_s: float = LAG_S) -> None:
        self.rollout_id = r.id
        self.started = r.started
        self.wanted = tuple(purchase_events if r.params.get("metric") == "conversion_rate" else click_events)
        self.lag_s = lag_s
        self.lock = threading.RLock()  # hold it while reading ``arms`` (they are the live totals)
        self._arms = {a: Arm(items=set()) for a in ARMS}
        self._requests: dict[str, tuple[str, str, tuple[str, ...]]] = {}  # request id -> (user, arm, slate)
        self._first: dict[str, tuple[int, str]] = {}  # user -> (ts, arm) of their first rollout request
        self._user_arms: dict[str, set[str]] = {}
        # per arm, one slot per user in first-seen order: items shown, hits, whether the user
        # switched arms (left out of the metric); arrays, so a look builds the metric vectorised
        self._slot: dict[str, dict[str, int]] = {a: {} for a in ARMS}
        self._shown = {a: np.zeros(64) for a in ARMS}
        self._hits = {a: np.zeros(64) for a in ARMS}
        self._switched = {a: np.zeros(64, bool) for a in ARMS}
        self._counts = {a: np.zeros((64, len(RATE_COLUMNS)), np.int64) for a in ARMS}  # Arm.per_user
        self._counted: set[tuple[str, str]] = set()  # (request id, item) pairs already a hit
        self._pending: dict[tuple[str, str], float] = {}  # events whose impression is not read yet -> when seen
        self._marks: list[tuple[float, int, int]] = []  # (when, newest impression seq, newest event seq) per look
        self.looks = 0
        self.rows_read = 0  # impressions + events read by the last look (its cost)

    def update(self, store: Store, *, now: float | None = None) -> None:
        """Read what was stored since the last look (see class docstring)."""
        t = time.time() if now is None else float(now)
        with self.lock:
            # the newest look at least lag_s old (else the oldest kept: never all again); look order
            old = [m for m in self._marks if m[0] <= t - self.lag_s] or self._marks[:1]
            safe_imp, safe_ev = (old[-1][1], old[-1][2]) if old else (0, 0)
            top_imp = max((m[1] for m in self._marks), default=0)
            top_ev = max((m[2] for m in self._marks), default=0)
            imps = store.impressions_after(after_seq=safe_imp, since=self.started)
            for seq, imp in imps:
                top_imp = max(top_imp, seq)
                self._add_impression(imp)
            events = store.request_events(after_seq=safe_ev, event_types=self.wanted)
            for seq, req, item, _etype in events:
                top_ev = max(top_ev, seq)
                self._add_hit(req, item, t)
            self._marks = [m for m in self._marks if m[0] > t - 2 * self.lag_s] + [(t, top_imp, top_ev)]
            for key, when in list(self._pending.items()):
                if key[0] in self._requests:
                    del self._pending[key]
                    self._add_hit(key[0], key[1], t)
                elif when < t - PENDING_S:
                    del self._pending[key]  # not a request of this rollout (or its impression is lost)
            self.looks += 1
            self.rows_read = len(imps) + len(events)

    def _add_impression(self, imp: dict[str, Any]) -> None:
        ro = (imp.get("context") or {}).get("rollout") or {}
        req = str(imp["request_id"])
        if ro.get("id") != self.rollout_id or ro.get("arm") not in self._arms or req in self._requests:
            return
        arm, uid = ro["arm"], str(imp["user_id"])
        a = self._arms[arm]
        row = (1, int(bool(ro.get("error"))), int(not imp["items"]),
               int(any(f not in NORMAL_FALLBACKS for f in ro.get("fallbacks") or [])))
        if ro.get("ms") is not None:
            a.latency_ms.append(float(ro["ms"]))
        a.users.add(uid)
        slate = tuple(str(it["item_id"]) for it in imp["items"])
        a.slates.append(slate)
        assert a.items is not None
        a.items.update(slate)
        ts = int(imp["timestamp"])
        if uid not in self._first or ts < self._first[uid][0]:
            self._first[uid] = (ts, arm)
        seen = self._user_arms.setdefault(uid, set())
        seen.add(arm)
        slot = self._slot_of(arm, uid)
        if len(seen) > 1:  # switched arms: out of the metric in every arm
            for other in seen:
                self._switched[other][self._slot_of(other, uid)] = True
        self._shown[arm][slot] += len(slate)
        self._counts[arm][slot] += row
        self._requests[req] = (uid, arm, slate)

    def _slot_of(self, arm: str, uid: str) -> int:
        """The user's slot in ``arm``'s arrays (a new one, zeroed, at the first sight)."""
        slots = self._slot[arm]
        slot = slots.get(uid)
        if slot is None:
            slot = slots[uid] = len(slots)
            if slot >= len(self._shown[arm]):  # grow by doubling
                for table in (self._shown, self._hits, self._switched, self._counts):
                    table[arm] = np.concatenate([table[arm], np.zeros_like(table[arm])])
        return slot

    def _add_hit(self, req: str, item: str, now: float) -> None:
        key = (req, item)
        if key in self._counted:
            return
        known = self._requests.get(req)
        if known is None:
            self._pending.setdefault(key, now)
            return
        uid, arm, slate = known
        if item in slate:
            self._counted.add(key)
            self._hits[arm][self._slot[arm][uid]] += slate.count(item)

    def arms(self, step_started: int) -> tuple[dict[str, Arm], int]:
        """(arm name -> Arm, users who switched arms) from the totals so far (no store read);
        ``new_in_step`` counts users first seen at or after ``step_started``. The Arms are the
        live totals: read them while holding ``lock``."""
        with self.lock:
            for a in self._arms.values():
                a.new_in_step = 0
            for ts, arm in self._first.values():
                if ts >= step_started:
                    self._arms[arm].new_in_step += 1
            for arm in ARMS:
                n = len(self._slot[arm])
                shown, hits, out = self._shown[arm][:n], self._hits[arm][:n], self._switched[arm][:n]
                keep = ~out & (shown > 0)
                self._arms[arm].values = hits[keep] / shown[keep]  # per user, in first-seen order
                self._arms[arm].per_user = self._counts[arm][:n]
            first = ARMS[0]  # a switched user was in both arms: count them in one
            return self._arms, int(self._switched[first][:len(self._slot[first])].sum())


def collect(store: Store, r: Rollout, *, click_events: tuple[str, ...] = ("click",),
            purchase_events: tuple[str, ...] = ("purchase",)) -> tuple[dict[str, Arm], int]:
    """(arm name -> Arm, users who switched arms) for rollout ``r`` from everything in the store
    (one look of a fresh ArmTracker: what ``winnow rollout status`` shows from the CLI)."""
    tracker = ArmTracker(r, click_events=click_events, purchase_events=purchase_events)
    tracker.update(store)
    return tracker.arms(r.step_started)  # a fresh tracker: nobody else holds its totals
