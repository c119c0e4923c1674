"""Per-item click/shown statistics for the service's Thompson sampling (explore kind "thompson").

Definitions ([feedback] config, winnow.core.config.FeedbackConfig):

- shown(item, surface): how many logged impressions showed the item on that surface.
- clicks(item, surface): how many of those shown items were followed by an event of a
  ``click_events`` type by the same user on the same item at most ``attribution_window_s``
  seconds later (t_impression <= t_event <= t_impression + window). At most one click per shown
  item, so clicks <= shown (a Bernoulli trial per shown item). An event is credited to that
  user's most recent impression of the item at or before it; a re-read event credits nothing
  twice. Attribution is by (user, item, time), so it needs no request_id on the event and is
  the same for every Store backend.
- Row "all surfaces" (``surface=None``) is the sum over surfaces.
- Decay (``half_life_s`` > 0): a showing at log time s, and its click, weigh
  0.5 ** ((now - s) / half_life_s), where now = the newest impression timestamp counted, so
  shown and clicks are exponentially fading sums and Thompson sampling follows click-through
  rates that drift. Log time, not the wall clock: every worker and a restarted service get
  the same numbers; with no new impressions the counts stop fading. Stored as weights
  2 ** ((s - t0) / half_life_s) against an origin t0 that moves forward (everything rescaled)
  once a weight passes 2 ** 64, so nothing overflows; reads scale by 2 ** ((t0 - now) / half_life_s).
  ``half_life_s`` = 0: plain counts.

Where the numbers come from:

- start-up: the store's impression log (``Store.read_impressions``) and its click events
  (``Store.read_feedback_events``), the last ``history_s`` seconds (0: all), so a restarted
  service has the same statistics.
- live: the service calls ``add_impression`` for each slate it logs and ``add_events`` for each
  event batch it ingests (the slate's next request already sees the change).
- other workers / replicas: ``refresh`` re-reads impressions and events whose timestamps are
  >= (highest timestamp read so far) - ``overlap_s``. Impressions already counted are skipped
  by request_id and click marking is idempotent, so re-reading is safe. ``start`` runs it every
  ``refresh_s`` seconds in a background thread.

Only impressions still open to a click (log time within window + overlap of the newest read)
are held individually; older ones survive only in the counts. Timestamps are the log's own
(never the wall clock), so a log written with old timestamps is attributed the same way.
Items are keyed by external id; ``bind(catalog_ids)`` gives array lookups by one catalog's
dense indices (``CatalogCounts``), where items the statistics never saw count zero (prior only).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from winnow.core.config import FeedbackConfig, WinnowConfig
from winnow.core.ids import IdMap
from winnow.data.store import Store

log = logging.getLogger(__name__)
_ALL = 0  # row of the per-surface count arrays holding the sum over surfaces
_BATCH = 5000  # slates per step of the time-ordered walk in refresh()
_RENORM = 64.0  # half-lives past the weight origin before everything is rescaled to a new one


def needs_item_stats(config: WinnowConfig) -> bool:
    """Whether any surface (or experiment variant) is served by Thompson sampling."""
    specs = list(config.pipeline.explore.values())
    for exp in config.experiments:
        for var in exp.variants:
            specs += list((var.overrides.get("explore") or {}).values())
    return any(isinstance(s, Mapping) and s.get("kind") == "thompson" for s in specs)


class ItemStats:
    """Click and shown counts per (surface, item); thread-safe. See the module docstring."""

    def __init__(self, config: FeedbackConfig) -> None:
        self.config = config
        self._click_types = frozenset(config.click_events)
        self._items = IdMap("item")
        self._surfaces: dict[str, int] = {}
        self._shown = np.zeros((1, 1024), np.float64)
        self._clicks = np.zeros((1, 1024), np.float64)
        # (user, item) -> impressions open to a click: [timestamp, surface row, item index, clicked]
        self._open: dict[tuple[str, str], list[list[Any]]] = {}
        self._known: dict[str, int] = {}  # request_id -> timestamp, of impressions counted
        self._order: deque[tuple[int, str, tuple[tuple[str, str], ...]]] = deque()  # (ts, request_id, keys), arrival order
        self._imp_hw: int | None = None  # highest impression / event timestamp read from the store
        self._ev_hw: int | None = None
        self._t0: int | None = None   # weight origin (log time), decay only
        self._now: int | None = None  # newest impression timestamp counted
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.refreshes = 0

    # --- construction ----------------------------------------------------------------------------
    @classmethod
    def from_store(cls, store: Store, config: FeedbackConfig, *, now: int | None = None) -> ItemStats:
        """Statistics rebuilt from the store's log (the last ``history_s`` before ``now``, or all)."""
        stats = cls(config)
        since = None
        if config.history_s:
            since = int(time.time() if now is None else now) - config.history_s
        stats.refresh(store, since=since)
        return stats

    # --- updates ------------------------------------------------------------------------------------
    def _row(self, surface: str | None) -> int:
        key = "" if surface is None else str(surface)
        row = self._surfaces.get(key)
        if row is None:
            row = self._surfaces[key] = len(self._surfaces) + 1
            pad = np.zeros((1, self._shown.shape[1]))
            self._shown = np.vstack([self._shown, pad])
            self._clicks = np.vstack([self._clicks, pad])
        return row

    def _item(self, item_id: str) -> int:
        idx = self._items.add(item_id)
        if idx >= self._shown.shape[1]:
            grow = np.zeros((self._shown.shape[0], self._shown.shape[1]))
            self._shown = np.hstack([self._shown, grow])
            self._clicks = np.hstack([self._clicks, grow])
        return idx

    def _weight(self, ts: int) -> float:
        """Stored weight of a showing at log time ``ts`` (1 without decay); caller holds the lock."""
        hl = self.config.half_life_s
        if not hl:
            return 1.0
        if self._t0 is None:
            self._t0 = ts
        e = (ts - self._t0) / hl
        if e > _RENORM:  # move the origin to ts: every stored weight scaled by 2 ** -e
            self._shown *= 2.0 ** -e
            self._clicks *= 2.0 ** -e
            self._t0, e = ts, 0.0
        return 2.0 ** e

    def _scale(self) -> float:
        """Factor from stored weights to counts as of the newest impression; caller holds the lock."""
        hl = self.config.half_life_s
        if not hl or self._t0 is None or self._now is None:
            return 1.0
        return 2.0 ** ((self._t0 - self._now) / hl)

    def add_impression(self, impression: Mapping[str, Any]) -> bool:
        """Count one logged slate (the dict given to ``Store.log_impressions``); False if its
        request_id was counted already."""
        rid = str(impression["request_id"])
        ts = int(impression["timestamp"])
        user = str(impression["user_id"])
        with self._lock:
            if rid in self._known:
                return False
            self._known[rid] = ts
            self._now = ts if self._now is None else max(self._now, ts)
            row = self._row(impression.get("surface"))
            w = self._weight(ts)
            keys = []
            for shown in impression.get("items") or []:
                item = str(shown["item_id"])
                idx = self._item(item)
                self._shown[_ALL, idx] += w
                self._shown[row, idx] += w
                key = (user, item)
                self._open.setdefault(key, []).append([ts, row, idx, False])
                keys.append(key)
            self._order.append((ts, rid, tuple(keys)))
            return True

    def add_events(self, events: pd.DataFrame) -> int:
        """Attribute click events (columns user_id, item_id, event_type, timestamp; other types
        are ignored) to the open impressions; returns how many shown items became clicked."""
        if events is None or not len(events):
            return 0
        pos = events[events["event_type"].isin(self._click_types)]
        window = self.config.attribution_window_s
        new = 0
        with self._lock:
            for user, item, t in zip(pos["user_id"].astype(str), pos["item_id"].astype(str),
                                     pos["timestamp"].astype(np.int64).tolist(), strict=True):
                entries = self._open.get((user, item))
                if not entries:
                    continue
                best = None
                for e in entries:  # the most recent impression at or before the event
                    if e[0] <= t and (best is None or e[0] >= best[0]):
                        best = e
                if best is None or t - best[0] > window or best[3]:
                    continue
                best[3] = True
                w = self._weight(best[0])  # the click weighs what its showing weighs
                self._clicks[_ALL, best[2]] += w
                self._clicks[best[1], best[2]] += w
                new += 1
        return new

    def refresh(self, store: Store, *, since: int | None = None) -> dict[str, int]:
        """Read what the store holds beyond this process's view (other workers' impressions and
        events); returns {"impressions": new slates counted, "clicks": new clicks}.

        Impressions (oldest first) and events are walked in time order, batch by batch, and
        impressions no later event can reach are dropped as the walk goes, so rebuilding from a
        long log holds only a window of it in memory (besides the store's answer itself)."""
        overlap = self.config.overlap_s
        imp_since = since if self._imp_hw is None else self._imp_hw - overlap
        ev_since = since if self._ev_hw is None else self._ev_hw - overlap
        imps = store.read_impressions(since=imp_since)
        events = store.read_feedback_events(event_types=sorted(self._click_types), since=ev_since)
        ev_ts = events["timestamp"].to_numpy(np.int64)
        added = clicks = done = 0
        for start in range(0, len(imps), _BATCH):
            batch = imps[start:start + _BATCH]
            added += sum(self.add_impression(imp) for imp in batch)
            top = max(int(imp["timestamp"]) for imp in batch)
            upto = int(np.searchsorted(ev_ts, top, side="left"))  # events before the batch's newest
            if upto > done:
                clicks += self.add_events(events.iloc[done:upto])
                done = upto
            with self._lock:
                self._imp_hw = top if self._imp_hw is None else max(self._imp_hw, top)
                self._evict(top)
        clicks += self.add_events(events.iloc[done:])
        with self._lock:
            if len(events):
                top = int(ev_ts.max())
                self._ev_hw = top if self._ev_hw is None else max(self._ev_hw, top)
            self._evict()
            self.refreshes += 1
        return {"impressions": added, "clicks": clicks}

    def _evict(self, horizon: int | None = None) -> None:
        """Forget impressions no (re-read) event can reach; their counts stay. ``horizon``: the
        log time reached (default: the newest impression and event read, the lower of the two)."""
        if horizon is None:
            if self._imp_hw is None:
                return
            horizon = self._imp_hw if self._ev_hw is None else min(self._imp_hw, self._ev_hw)
        cutoff = horizon - self.config.attribution_window_s - self.config.overlap_s
        while self._order and self._order[0][0] < cutoff:
            ts, rid, keys = self._order.popleft()
            if self._known.get(rid, cutoff) < cutoff:
                del self._known[rid]
            for key in keys:
                entries = self._open.get(key)
                if entries is None:
                    continue
                kept = [e for e in entries if e[0] >= cutoff]
                if kept:
                    self._open[key] = kept
                else:
                    del self._open[key]

    def forget_user(self, user_id: str) -> int:
        """Drop the user's open impressions (personal-data erasure; the aggregate counts stay);
        returns how many shown items were dropped."""
        user = str(user_id)
        with self._lock:
            keys = [key for key in self._open if key[0] == user]
            return sum(len(self._open.pop(key)) for key in keys)

    # --- background refresh -------------------------------------------------------------------------
    def start(self, store: Store) -> None:
        """Refresh from ``store`` every ``refresh_s`` seconds in a daemon thread until ``stop``."""
        def loop() -> None:
            while not self._stop.wait(self.config.refresh_s):
                try:
                    self.refresh(store)
                except Exception as exc:  # noqa: BLE001 - a failed refresh is retried next tick
                    log.error("item statistics refresh failed (retrying in %.1fs): %s",
                              self.config.refresh_s, exc)

        self._thread = threading.Thread(target=loop, name="item-stats-refresh", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5.0)

    # --- reads ----------------------------------------------------------------------------------------
    def lookup(self, stat_idx: np.ndarray, surface: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(clicks, shown) float64 for dense statistics indices ``stat_idx`` (-1: unseen -> 0)."""
        idx = np.asarray(stat_idx, np.int64)
        ok = idx >= 0
        clicks = np.zeros(len(idx))
        shown = np.zeros(len(idx))
        with self._lock:
            row = _ALL if surface is None else self._surfaces.get(str(surface))
            if row is not None:
                scale = self._scale()
                clicks[ok] = self._clicks[row, idx[ok]] * scale
                shown[ok] = self._shown[row, idx[ok]] * scale
        return clicks, shown

    def counts(self, item_ids: Iterable[str], surface: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(clicks, shown) float64 for external item ids (unknown items: 0, 0)."""
        with self._lock:
            idx = self._items.encode([str(i) for i in item_ids], missing=-1)
        return self.lookup(idx, surface)

    def item_summary(self, item_id: str) -> dict[str, Any]:
        """{"all": {clicks, shown}, "surfaces": {surface: {clicks, shown}}} for one item."""
        with self._lock:
            idx = self._items.get(item_id)
            rows = [("all", _ALL)] + sorted(self._surfaces.items())
            scale = self._scale()

            def one(row: int) -> dict[str, float]:
                if idx < 0:
                    return {"clicks": 0.0, "shown": 0.0}
                return {"clicks": float(self._clicks[row, idx] * scale),
                        "shown": float(self._shown[row, idx] * scale)}

            out = {name: one(row) for name, row in rows}
        return {"all": out.pop("all"), "surfaces": out}

    @property
    def n_items(self) -> int:
        return len(self._items)

    def item_id(self, stat_idx: int) -> str:
        return self._items.external(stat_idx)

    def open_impressions(self) -> int:
        """Shown items still held for click attribution (memory gauge)."""
        with self._lock:
            return sum(len(v) for v in self._open.values())

    def bind(self, catalog_ids: IdMap) -> CatalogCounts:
        """Lookups by the dense indices of ``catalog_ids`` (a runtime's catalog)."""
        return CatalogCounts(self, catalog_ids)


class CatalogCounts:
    """ItemStats seen through one catalog's dense item indices (what the explore stage holds).

    Keeps a translation array catalog index -> statistics index, extended incrementally as the
    catalog (items added through the API) or the statistics (newly shown items) grow.
    """

    def __init__(self, stats: ItemStats, catalog_ids: IdMap) -> None:
        self.stats = stats
        self.catalog_ids = catalog_ids
        self._map = np.empty(0, np.int64)
        self._n_stat = 0
        self._lock = threading.Lock()

    def _sync(self) -> np.ndarray:
        n_cat, n_stat = len(self.catalog_ids), self.stats.n_items
        if n_cat == len(self._map) and n_stat == self._n_stat:
            return self._map
        with self._lock:
            m, old_stat = self._map, self._n_stat
            if n_cat > len(m):
                new_ids = [self.catalog_ids.external(i) for i in range(len(m), n_cat)]
                with self.stats._lock:
                    ext = self.stats._items.encode(new_ids, missing=-1)
                m = np.concatenate([m, np.asarray(ext, np.int64)])
            for s in range(old_stat, n_stat):  # statistics for items this map did not know yet
                c = self.catalog_ids.get(self.stats.item_id(s))
                if 0 <= c < len(m):
                    m[c] = s
            self._map, self._n_stat = m, n_stat
            return m

    def counts(self, items: np.ndarray, surface: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(clicks, shown) float64 [len(items)] for catalog indices ``items`` on ``surface``
        (None: all surfaces); items without statistics get 0, 0 (the prior alone)."""
        m = self._sync()
        it = np.asarray(items, np.int64)
        idx = np.full(len(it), -1, np.int64)
        ok = (it >= 0) & (it < len(m))
        idx[ok] = m[it[ok]]
        return self.stats.lookup(idx, surface)
