"""The learned ranker in the service: the bundle's ranker loaded with live feature state.

``load_served_ranker`` reads the bundle's ranker (winnow.bundle.load_ranker: ranker/ranker.txt,
ranker.json, features.npz), compiles it with lleaves when installed (cached by sha256, so a
rollback or a swap to a bundle with the same ranker does not compile again), replays the
store's positive events into an ``OnlineFeatureState`` through the bundle's id maps (ids
unknown to the bundle are skipped) and returns a ``LearnedRanker`` for the pipeline;
``FeatureFeed.apply`` folds each acknowledged event batch in. The ranker is trained by
winnow.training.served_ranker.

A swap does not always replay: when the new bundle's feature inputs equal the serving one's,
its runtime takes the serving state over (``FeatureFeed.successor``, one shared state); when
the new bundle extends the serving one (its id maps start with the serving ones, the spec's
half-life and item attributes are unchanged: features.remap), the serving state is forked,
corrected for known items whose catalog rows changed and for moved peer codes, and the skipped
events of the new ids folded in (``FeatureFeed.remapped``): O(users + items + those events + the
histories of the changed items' users), plus a numpy pass over every user's history when peer
codes moved; no store read. Otherwise, and with the reason logged, the event log is replayed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from winnow.bundle import Bundle, feature_state_digests, has_ranker, load_ranker, ranker_digests
from winnow.core.config import WinnowConfig
from winnow.core.ids import IdMap
from winnow.data.store import EventLog, Store
from winnow.data.training_data import event_weights
from winnow.features import FeatureCatalog, OnlineFeatureState
from winnow.features.remap import remap_blocker
from winnow.features.spec import FeatureSpec
from winnow.models.ranker import LambdaRanker
from winnow.pipeline.types import Candidates, Ranker, Request
from winnow.serving.outside_events import OutsideEvents

log = logging.getLogger(__name__)
BULK_EVENTS = 64  # batches larger than this use OnlineFeatureState.add_events
_CACHE_SIZE = 2
_cache: OrderedDict[tuple[str, ...], tuple[LambdaRanker, FeatureCatalog]] = OrderedDict()
_cache_lock = threading.Lock()
Snapshot = Callable[[Callable[[], "FeatureFeed | str"]], "FeatureFeed | str"]

class LearnedRanker(Ranker):
    """The pipeline's rank stage backed by a ``LambdaRanker`` and live ``OnlineFeatureState``.

    ``score_request(candidates, request)`` builds the online features of one request (user
    resolved to a dense index with ``user_index``; unknown users get -1 and history-free
    features; t = request.now; device from request.context) and returns float32 [n] scores.
    ``explain(...)`` returns each row's top pred_contrib features. Pipeline source names map to
    the spec's source names through ``source_names`` (identity by default); a spec source the
    request did not run gets NaN (missing) score and rank, as in training for unproposed items.
    """

    own_features = True
    explains = True

    def __init__(self, model: LambdaRanker, state: OnlineFeatureState, user_index: Callable[[str], int], *,
                 source_names: dict[str, str] | None = None, explain_top: int = 5) -> None:
        self.model = model
        self.state = state
        self.user_index = user_index
        self.source_names = dict(source_names or {})
        self.explain_top = explain_top

    def features(self, candidates: Candidates, request: Request) -> np.ndarray:
        """float32 [n, F] online features of the request's candidate rows."""
        n = len(candidates)
        inverse = {spec_name: pipe for pipe, spec_name in self.source_names.items()}
        src_score, src_rank = {}, {}
        for s in self.model.spec.sources:
            pipe = inverse.get(s, s)
            score = candidates.source_scores.get(pipe)
            rank = candidates.source_ranks.get(pipe)
            src_score[s] = np.full(n, np.nan) if score is None else np.asarray(score, np.float64)
            src_rank[s] = (np.full(n, np.nan) if rank is None
                           else np.where(np.asarray(rank) >= 0, np.asarray(rank, np.float64), np.nan))
        device = request.context.get("device") if isinstance(request.context, dict) else None
        return self.state.features(int(self.user_index(request.user.user_id)), candidates.items,
                                   float(request.now), src_score=src_score, src_rank=src_rank,
                                   device=device)

    def knows(self, request: Request) -> bool:
        """True when the user has history in the feature state (the ranker was trained on
        such lists); cold users are left to the pipeline's blend and cold-start sources."""
        return self.state.has_history(int(self.user_index(request.user.user_id)))

    def score_request(self, candidates: Candidates, request: Request) -> np.ndarray | None:
        """float32 [n] ranker scores (higher = better), or None for a user without history."""
        if not self.knows(request):
            return None
        if len(candidates) == 0:
            return np.empty(0, np.float32)
        return self.model.predict(self.features(candidates, request)).astype(np.float32)

    def explain(self, candidates: Candidates, request: Request,
                rows: np.ndarray) -> dict[int, list[dict[str, float]]]:
        """Top ``explain_top`` feature contributions per candidate row ({} for cold users)."""
        rows = np.asarray(rows, np.int64)
        if not self.knows(request) or len(rows) == 0:
            return {}
        x = self.features(candidates, request)[rows]
        return dict(zip(rows.tolist(), self.model.top_contributions(x, top=self.explain_top), strict=True))


class FeatureFeed:
    """Maps external-id event frames to the bundle's indices and feeds the feature state."""

    def __init__(self, state: OnlineFeatureState, user_ids: IdMap, item_ids: IdMap,
                 config: WinnowConfig, *, key: tuple[str, ...] | None = None,
                 lock: threading.Lock | None = None, outside: OutsideEvents | None = None) -> None:
        """``key``: sha256 digests of everything the state depends on besides the store's events
        (feature spec, feature catalog, id maps); None when unknown (the state is never shared).
        ``lock``: shared with the feed whose state this one took over (``shared`` is then True).
        ``outside``: where the positive events skipped for unknown ids are recorded (a new
        record by default; ``remapped`` folds them into a bundle that knows their ids)."""
        self.state = state
        self.user_ids = user_ids
        self.item_ids = item_ids
        self.config = config
        self.key = key
        self.outside = outside if outside is not None else OutsideEvents()
        self.shared = lock is not None  # took over a serving runtime's state: nothing to catch up
        self._lock = lock or threading.Lock()

    def successor(self, user_ids: IdMap, item_ids: IdMap) -> FeatureFeed:
        """A feed for a new runtime over the SAME state object (no copy, no replay): valid only
        when the new bundle's ``key`` equals this one's, which ``load_served_ranker`` checks. Until
        the swap, events reach the state through this feed; after it, through the successor's,
        so each acknowledged event is folded in once."""
        return FeatureFeed(self.state, user_ids, item_ids, self.config, key=self.key, lock=self._lock,
                           outside=self.outside)

    def remapped(self, user_ids: IdMap, item_ids: IdMap, catalog: FeatureCatalog, spec: FeatureSpec, *,
                 key: tuple[str, ...] | None) -> FeatureFeed | str:
        """A feed with its own state for a bundle that extends this one's (``user_ids`` /
        ``item_ids`` start with this feed's ids; ``catalog`` and ``spec`` pass
        ``features.remap.remap_blocker``): this state forked (``OnlineFeatureState.fork``, which
        corrects changed item rows and moved peer codes), plus the skipped events whose ids the
        new maps know. Equal to replaying the event log into a new state for that bundle
        (decayed sums up to float rounding, as for any incremental fold). Returns why not (a
        str) when the bundle does not extend this one. O(users + items + skipped events + the
        corrections' work: see ``fork``); this feed's state is unchanged and keeps serving its bundle."""
        with self._lock:  # no event folds in between: the fork and the skipped record agree
            reason = self._remap_blocker(user_ids, item_ids, catalog, spec)
            if reason is not None:
                return reason
            state = self.state.fork(catalog, spec, correct=False)
            (u, i, ts), rest = self.outside.split(user_ids, item_ids)
        state.correct()  # the fork's own work: event writes need not wait for it
        feed = FeatureFeed(state, user_ids, item_ids, self.config, key=key, outside=rest)
        feed._fold(np.ones(len(ts)), u, i, ts)
        return feed

    def _remap_blocker(self, user_ids: IdMap, item_ids: IdMap, catalog: FeatureCatalog,
                       spec: FeatureSpec) -> str | None:
        if self.outside.overflowed:
            return f"more than {self.outside.limit} events of unknown ids since the bundle load"
        for kind, old, new in (("user", self.user_ids, user_ids), ("item", self.item_ids, item_ids)):
            if len(new) < len(old) or new.ids[:len(old)] != old.ids:
                return f"the new bundle drops or re-orders serving {kind} ids ({len(old)} -> {len(new)})"
        return remap_blocker(self.state.catalog, self.state.spec, catalog, spec)

    def _add(self, users: list[str], items: list[str], types: list[str], values: np.ndarray,
             ts: np.ndarray) -> int:
        kinds = sorted(set(types))
        codes = np.array([kinds.index(t) for t in types], np.int64)
        weight = event_weights(codes, values, kinds, self.config.events) if len(codes) else np.empty(0)
        u = self.user_ids.encode(users, missing=-1)
        i = self.item_ids.encode(items, missing=-1)
        rows = np.arange(len(users))
        return self._fold(weight, u, i, ts, keys=(users, rows, items, rows))

    def _fold(self, weight: np.ndarray, u: np.ndarray, i: np.ndarray, ts: np.ndarray, *,
              keys: tuple[list[str], np.ndarray, list[str], np.ndarray] | None = None) -> int:
        """Fold the positive events of known ids in (time order); record the positive events of
        unknown ids in ``outside``: event j's ids are ``keys[0][keys[1][j]]``, ``keys[2][keys[3][j]]``."""
        positive = weight > 0
        known = (u >= 0) & (i >= 0)
        keep = np.flatnonzero(positive & known)
        order = keep[np.argsort(ts[keep], kind="stable")]
        skipped = np.flatnonzero(positive & ~known) if keys is not None else np.empty(0, np.int64)
        with self._lock:
            if len(order) > BULK_EVENTS:  # numpy group-bys instead of a per-event Python loop
                self.state.add_events(u[order], i[order], ts[order])
            else:
                for j in order.tolist():
                    self.state.add_event(int(u[j]), int(i[j]), int(ts[j]))
            if len(skipped) and keys is not None:
                self.outside.add(keys[0], keys[1][skipped], keys[2], keys[3][skipped], ts[skipped])
        return len(order)

    def replay(self, log: EventLog) -> int:
        """Fold a store ``EventLog`` in (the bundle-load replay), mapping its key lists to the
        bundle's indices once per distinct id rather than once per event; returns events added."""
        if not len(log):
            return 0
        u = self.user_ids.encode(log.user_ids, missing=-1)[log.user]
        i = self.item_ids.encode(log.item_ids, missing=-1)[log.item]
        codes = np.asarray(log.event_type, np.int64)
        weight = event_weights(codes, np.asarray(log.value, np.float64), list(log.event_types), self.config.events)
        return self._fold(weight, u, i, np.asarray(log.timestamp, np.int64),
                          keys=(log.user_ids, np.asarray(log.user), log.item_ids, np.asarray(log.item)))

    def apply(self, frame: pd.DataFrame) -> int:
        """Fold an acknowledged event frame (EVENT_COLUMNS) in; returns events added."""
        if len(frame) == 0:
            return 0
        types = [str(t) if t is not None else "" for t in frame["event_type"]]
        try:
            return self._add([str(x) for x in frame["user_id"]], [str(x) for x in frame["item_id"]], types,
                             frame["value"].to_numpy(np.float64), frame["timestamp"].to_numpy(np.int64))
        except Exception:  # a feature-state failure must never fail ingestion
            log.exception("ranker feature state: could not apply %d events", len(frame))
            return 0


def _compiled_ranker(bundle_dir: Path, digests: tuple[str, ...] | None) -> tuple[LambdaRanker, FeatureCatalog]:
    """The bundle's ranker (compiled with lleaves when installed) and feature catalog, shared
    by bundles whose ranker files have the same sha256 (from the verified manifest): both are
    read-only after load, and LLVM compilation is the slowest step of a swap after the replay.
    Keeps the last ``_CACHE_SIZE`` (the serving bundle and the one a rollback returns to)."""
    with _cache_lock:
        hit = _cache.get(digests) if digests else None
        if hit is not None and digests:
            _cache.move_to_end(digests)
            return hit
    loaded = load_ranker(bundle_dir)
    assert loaded is not None, "the caller checked has_ranker"
    model, catalog = loaded
    if not model.compile():  # lleaves missing: LightGBM's own predict (slower, same scores)
        log.warning("lleaves not installed: the ranker predicts with LightGBM (slower)")
    out = (model, catalog)
    if digests:
        with _cache_lock:
            _cache[digests] = out
            while len(_cache) > _CACHE_SIZE:
                _cache.popitem(last=False)
    return out


def load_served_ranker(bundle: Bundle, store: Store, config: WinnowConfig, *,
                       serving_feed: FeatureFeed | None = None,
                       snapshot: Snapshot | None = None) -> tuple[LearnedRanker, FeatureFeed] | None:
    """The bundle's learned ranker with its online feature state; None without one.

    The bundle's verified manifest gives each ranker file's sha256 (the compiled-model cache key).
    The state is the store's positive events folded in through the bundle's id maps, so it
    depends only on the events, the feature spec (ranker.json), the feature catalog
    (features.npz) and the id maps. When ``serving_feed`` (the serving runtime's) was built from
    the same four files, its state is taken over (``FeatureFeed.successor``) instead of replaying
    the whole event log: a rollback, or a swap between bundles trained on the same catalog, then
    costs no replay. When the new bundle extends the serving one (``FeatureFeed.remapped``), the
    serving state is forked and the events of the new ids folded in, inside ``snapshot`` (the
    swap's consistent point: swap.CatchUp.snapshot; run directly when None). Otherwise the
    event log is replayed (about 0.5 s per 60k events here), with the reason logged."""
    if not has_ranker(bundle.path):
        return None
    files = bundle.files
    user_ids, item_ids = bundle.user_ids, bundle.item_ids
    model, catalog = _compiled_ranker(bundle.path, ranker_digests(files))
    key = feature_state_digests(files)
    if key is not None and serving_feed is not None and serving_feed.key == key:
        feed = serving_feed.successor(user_ids, item_ids)
        log.info("ranker feature state: taken over from the serving runtime (same feature inputs)")
        return LearnedRanker(model, feed.state, lambda ext: user_ids.get(ext, -1)), feed
    if serving_feed is not None:
        started = time.perf_counter()
        source = serving_feed

        def remap() -> FeatureFeed | str:
            return source.remapped(user_ids, item_ids, catalog, model.spec, key=key)

        got = snapshot(remap) if snapshot is not None else remap()
        if isinstance(got, FeatureFeed):
            log.info("ranker feature state: remapped from the serving runtime in %.2f s (%d users, %d items)",
                     time.perf_counter() - started, len(user_ids), len(item_ids))
            return LearnedRanker(model, got.state, lambda ext: user_ids.get(ext, -1)), got
        log.info("ranker feature state: replaying the event log: no remap (%s)", got)
    state = OnlineFeatureState(catalog, model.spec)
    feed = FeatureFeed(state, user_ids, item_ids, config, key=key)
    started = time.perf_counter()
    n = feed.replay(store.read_events())
    log.info("ranker feature state: %d events replayed in %.2f s", n, time.perf_counter() - started)
    ranker = LearnedRanker(model, state, lambda ext: user_ids.get(ext, -1))
    return ranker, feed
