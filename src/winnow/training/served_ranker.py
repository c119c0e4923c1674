"""The learned ranker in the service: trained into the bundle, loaded with live feature state.

Bundle layout (written by ``winnow train`` when ``[ranker] enabled``): ``ranker/ranker.txt``
(LightGBM text model), ``ranker/ranker.json`` (feature spec, parameters, importance) and
``ranker/features.npz`` (the static ``FeatureCatalog`` arrays, indexed like the bundle's ids).

At load, ``load_served_ranker`` replays the store's positive events into an
``OnlineFeatureState`` (through the bundle's id maps; ids unknown to the bundle are skipped) and
returns a ``LearnedRanker`` for the pipeline; ``FeatureFeed.apply`` folds each acknowledged
event batch in.

Training lists (``[ranker] train_on``): once the store's impression log holds enough labelled
slates (``logged_lists``), the ranker learns from them -- shown items labelled by what the user
did next, source scores as the service logged them, other features point-in-time as of each
slate (training/impression_lists.py) -- so training sees what serving sees. Before that, lists
come from history (as of each user's last event, sources scored by the retrieval models rather
than through the ANN index and recent items): the known skew of that cold-start path.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from winnow.core.config import WinnowConfig
from winnow.core.ids import IdMap
from winnow.data.interactions import Dataset
from winnow.data.store import EventLog
from winnow.data.training_data import event_weights
from winnow.features import FeatureCatalog, OnlineFeatureState
from winnow.models.ranker import LambdaRanker, LearnedRanker
from winnow.training.funnel import (
    FunnelModel,
    InsufficientRankerData,
    served_ranker_config,
)
from winnow.training.impression_lists import ImpressionLists, impression_lists

log = logging.getLogger(__name__)
RANKER_DIR = "ranker"
BULK_EVENTS = 64  # batches larger than this use OnlineFeatureState.add_events
_CACHE_SIZE = 2
_cache: OrderedDict[tuple[str, ...], tuple[LambdaRanker, FeatureCatalog]] = OrderedDict()
_cache_lock = threading.Lock()


def logged_lists(config: WinnowConfig, ds: Dataset, store: Any) -> tuple[ImpressionLists | None, dict[str, Any]]:
    """The impression log's labelled slates for the served ranker, per ``[ranker] train_on``:
    (lists, info) or (None, info saying why history is used). Reads the last
    ``impression_days`` before the training data's newest event; clicks per ``[feedback]``
    (types, attribution window), purchases per ``[ranker] purchase_events``."""
    rc, fb = config.ranker, config.feedback
    if rc.train_on == "history" or store is None:
        return None, {"training_data": "history", "why": "train_on = history" if store else "no store"}
    newest = int(ds.interactions.timestamp.max()) if len(ds.interactions) else int(time.time())
    since = newest - int(rc.impression_days * 86400)
    imps = store.read_impressions(since=since)
    types = sorted(set(fb.click_events) | set(rc.purchase_events))
    events = store.read_feedback_events(event_types=types, since=since)
    lists = impression_lists(imps, events, user_ids=ds.user_ids, item_ids=ds.item_ids,
                             click_types=fb.click_events, purchase_types=rc.purchase_events,
                             window_s=fb.attribution_window_s)
    info = {"slates_read": lists.slates, "shown_read": lists.shown, "labelled_slates": len(lists)}
    if len(lists) >= rc.min_impression_lists:
        return lists, {"training_data": "impressions", **info}
    why = f"{len(lists)} labelled slates in the log, fewer than min_impression_lists = {rc.min_impression_lists}"
    if rc.train_on == "impressions":
        raise InsufficientRankerData(why)
    return None, {"training_data": "history", "why": why, **info}


def fit_served_ranker(config: WinnowConfig, ds: Dataset, *, funnel_cls: Any = FunnelModel,
                      store: Any = None, models: dict[str, Any] | None = None,
                      progress: Any = None) -> tuple[FunnelModel | None, dict[str, Any]]:
    """Fit the service's ranker on all of ``ds``; (None, reason) when there is too little data
    or no pipeline source is backed by a retrieval model. ``funnel_cls`` builds the funnel
    (winnow.engine passes one that computes the features on a distributed engine). With a
    ``store``, its impression log may supply the training lists (``logged_lists``).
    ``models``: registry name -> a model already fitted on ``ds.interactions`` (the bundle's);
    the funnel reuses them instead of fitting its sources on all events again. ``progress``:
    a callable taking one message string."""
    cfg, mapping = served_ranker_config(config)
    if not mapping:
        return None, {"skipped": "no pipeline source is backed by a retrieval model"}
    fitted = {src: models[reg] for src, reg in mapping.items() if models and reg in models}
    try:
        logged, log_info = logged_lists(config, ds, store)
        funnel = funnel_cls(ds, cfg, source_models=mapping).fit(
            ds.interactions, impressions=logged, fitted=fitted, progress=progress)
    except InsufficientRankerData as exc:
        return None, {"skipped": str(exc)}
    report = {k: v for k, v in funnel.report_.items() if k != "importance"}
    return funnel, {**report, "impression_log": log_info, "sources": mapping,
                    "top_features": funnel.report_["importance"][:10]}


def save_served_ranker(funnel: FunnelModel, bundle_dir: Path) -> None:
    assert funnel.ranker_ is not None and funnel.catalog_ is not None
    d = Path(bundle_dir) / RANKER_DIR
    funnel.ranker_.save(d)
    funnel.catalog_.save(d / "features.npz")


class FeatureFeed:
    """Maps external-id event frames to the bundle's indices and feeds the feature state."""

    def __init__(self, state: OnlineFeatureState, user_ids: IdMap, item_ids: IdMap,
                 config: WinnowConfig, *, key: tuple[str, ...] | None = None,
                 lock: threading.Lock | None = None) -> None:
        """``key``: sha256 digests of everything the state depends on besides the store's events
        (feature spec, feature catalog, id maps); None when unknown (the state is never shared).
        ``lock``: shared with the feed whose state this one took over (``shared`` is then True)."""
        self.state = state
        self.user_ids = user_ids
        self.item_ids = item_ids
        self.config = config
        self.key = key
        self.shared = lock is not None  # took over a serving runtime's state: nothing to catch up
        self._lock = lock or threading.Lock()

    def successor(self, user_ids: IdMap, item_ids: IdMap) -> FeatureFeed:
        """A feed for a new runtime over the SAME state object (no copy, no replay): valid only
        when the new bundle's ``key`` equals this one's, which ``load_served_ranker`` checks. Until
        the swap, events reach the state through this feed; after it, through the successor's,
        so each acknowledged event is folded in once."""
        return FeatureFeed(self.state, user_ids, item_ids, self.config, key=self.key, lock=self._lock)

    def _add(self, users: list[str], items: list[str], types: list[str], values: np.ndarray,
             ts: np.ndarray) -> int:
        kinds = sorted(set(types))
        codes = np.array([kinds.index(t) for t in types], np.int64)
        weight = event_weights(codes, values, kinds, self.config.events) if len(codes) else np.empty(0)
        u = self.user_ids.encode(users, missing=-1)
        i = self.item_ids.encode(items, missing=-1)
        return self._fold(weight, u, i, ts)

    def _fold(self, weight: np.ndarray, u: np.ndarray, i: np.ndarray, ts: np.ndarray) -> int:
        keep = np.flatnonzero((weight > 0) & (u >= 0) & (i >= 0))
        order = keep[np.argsort(ts[keep], kind="stable")]
        with self._lock:
            if len(order) > BULK_EVENTS:  # numpy group-bys instead of a per-event Python loop
                self.state.add_events(u[order], i[order], ts[order])
            else:
                for j in order.tolist():
                    self.state.add_event(int(u[j]), int(i[j]), int(ts[j]))
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
        return self._fold(weight, u, i, np.asarray(log.timestamp, np.int64))

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


def _compiled_ranker(d: Path, digests: tuple[str, ...] | None) -> tuple[LambdaRanker, FeatureCatalog]:
    """The bundle's ranker (compiled with lleaves when installed) and feature catalog, shared
    by bundles whose ranker files have the same sha256 (from the verified manifest): both are
    read-only after load, and LLVM compilation is the slowest step of a swap after the replay.
    Keeps the last ``_CACHE_SIZE`` (the serving bundle and the one a rollback returns to)."""
    with _cache_lock:
        hit = _cache.get(digests) if digests else None
        if hit is not None:
            _cache.move_to_end(digests)
            return hit
    model = LambdaRanker.load(d)
    if not model.compile():  # lleaves missing: LightGBM's own predict (slower, same scores)
        log.warning("lleaves not installed: the ranker predicts with LightGBM (slower)")
    out = (model, FeatureCatalog.load(d / "features.npz"))
    if digests:
        with _cache_lock:
            _cache[digests] = out
            while len(_cache) > _CACHE_SIZE:
                _cache.popitem(last=False)
    return out


def _state_key(files: dict[str, str] | None) -> tuple[str, ...] | None:
    """Digests of the inputs of the online feature state other than the store's events."""
    names = [f"{RANKER_DIR}/ranker.json", f"{RANKER_DIR}/features.npz", "user_ids.json", "item_ids.json"]
    return tuple(files[n] for n in names) if files and all(n in files for n in names) else None


def load_served_ranker(bundle_dir: Path, store: Any, config: WinnowConfig, user_ids: IdMap,
                       item_ids: IdMap, *, files: dict[str, str] | None = None,
                       serving_feed: FeatureFeed | None = None) -> tuple[LearnedRanker, FeatureFeed] | None:
    """The bundle's learned ranker with its online feature state; None without one.

    ``files``: the verified manifest's {relative path: sha256} (enables the compiled-model cache).
    The state is the store's positive events folded in through the bundle's id maps, so it
    depends only on the events, the feature spec (ranker.json), the feature catalog
    (features.npz) and the id maps. When ``serving_feed`` (the serving runtime's) was built from
    the same four files, its state is taken over (``FeatureFeed.successor``) instead of replaying
    the whole event log: a rollback, or a swap between bundles trained on the same catalog, then
    costs no replay. Otherwise the event log is replayed (about 0.5 s per 60k events here)."""
    d = Path(bundle_dir) / RANKER_DIR
    if not (d / "ranker.txt").is_file():
        return None
    names = [f"{RANKER_DIR}/{n}" for n in ("ranker.txt", "ranker.json", "features.npz")]
    digests = tuple(files[n] for n in names) if files and all(n in files for n in names) else None
    model, catalog = _compiled_ranker(d, digests)
    key = _state_key(files)
    if key is not None and serving_feed is not None and serving_feed.key == key:
        feed = serving_feed.successor(user_ids, item_ids)
        log.info("ranker feature state: taken over from the serving runtime (same feature inputs)")
        return LearnedRanker(model, feed.state, lambda ext: user_ids.get(ext, -1)), feed
    state = OnlineFeatureState(catalog, model.spec)
    feed = FeatureFeed(state, user_ids, item_ids, config, key=key)
    started = time.perf_counter()
    n = feed.replay(store.read_events())
    log.info("ranker feature state: %d events replayed in %.2f s", n, time.perf_counter() - started)
    ranker = LearnedRanker(model, state, lambda ext: user_ids.get(ext, -1))
    return ranker, feed
