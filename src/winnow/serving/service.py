"""The service behind the HTTP routes: store, online state, the active runtime, metrics, log.

Routes stay thin: they validate input (pydantic), call one method here and shape the reply.
``Service.runtime``, the one reference an activation swaps, is read once per request (one model version).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from datetime import datetime, timezone
from typing import Any

import numpy as np
import pandas as pd

from winnow.core.config import WinnowConfig
from winnow.core.errors import BundleError, ConfigError, StoreError, StoreUnavailableError
from winnow.core.ids import IdMap
from winnow.data.open_store import open_store
from winnow.data.schema import EVENT_COLUMNS
from winnow.data.store import Store
from winnow.pipeline.types import Slate
from winnow.serving.impressions import ImpressionWriter
from winnow.serving.drift_reader import DriftReader, logs_candidates
from winnow.serving.item_stats import ItemStats, needs_item_stats
from winnow.rollout.assign import CHALLENGER, experiment_name
from winnow.serving.rollout_follower import RolloutFollower, rollout_reconcile
from winnow.serving.busy_board import published_busy
from winnow.serving.shadow_link import ShadowJobs
from winnow.serving.runtime import Runtime
from winnow.serving import memory, worker_proc
from winnow.serving.swap import (CatchUp, background_priority, one_build_at_a_time, settle, startup_build,
                                stop_freezing_after_full_collections, trim_later)
from winnow.serving.online_state import ResilientState, open_backend
from winnow.serving.telemetry import Metrics
from winnow import bundle as bundles

log = logging.getLogger(__name__)


class Service:
    """Owns the store, the online state and the active Runtime."""

    def __init__(self, config: WinnowConfig, *, store: Store | None = None) -> None:
        memory.limit_arenas()  # before this service's threads allocate (memory.py; env WINNOW_MALLOC_ARENA_MAX)
        self.config = config
        self.store = store if store is not None else open_store(config.store_url(),
                                                                 busy_timeout_ms=config.store.busy_timeout_ms)
        self.metrics = Metrics()
        # [online] url: in-process (memory://) or shared by replicas (redis://); degrades, never fails
        self.state = ResilientState(open_backend(config, self.store), self.store, config=config,
                                    metrics=self.metrics, on_remote_events=self._remote_events)
        self.impressions = ImpressionWriter(self.store, self.metrics, batch=config.serving.impression_batch,
                                            capacity=config.serving.impression_queue)
        self._swap_lock = threading.Lock()
        self._catchup = CatchUp()  # events acknowledged during a build reach the new runtime (swap.py)
        self._id_maps: dict[str, IdMap] = {}  # the last built bundle's id maps (load_bundle(reuse=))
        self.item_stats: ItemStats | None = None  # Thompson sampling's per-item counts: from the log, kept live
        if needs_item_stats(config):
            self.item_stats = ItemStats.from_store(self.store, config.feedback)
            self.item_stats.start(self.store)
        rollout_reconcile(self.store, self.config.home, "at start-up")  # a promotion a crash interrupted
        self.runtime: Runtime = startup_build(self._initial_runtime, self.metrics)  # a spare: at idle priority
        self._catchup.abort()  # no request has been served yet: nothing to catch up
        settle(and_later=config.serving.gc_freeze)  # startup objects (and later survivors) leave the GC's generations
        self._refused: str | None = None  # ACTIVE version that failed to load (not retried)
        self._stop = threading.Event()
        self._poller = threading.Thread(target=self._follow_active, name="bundle-follower", daemon=True)
        self._poller.start()
        # rollouts: the challenger runtime, shadow worker and decisions follow the store's state
        self._challenger_feed: Any = None  # the challenger's ranker feature feed (events reach it too)
        self.busy = published_busy()  # requests in flight (the app's middleware): shadow jobs wait for none
        self.shadow = ShadowJobs(self.store, self.metrics, config, self.busy)  # this thread or the shadow process
        self.rollout = RolloutFollower(self)
        startup_build(self.rollout.refresh, self.metrics)  # a running rollout's challenger, like the runtime
        self.rollout.start()
        # drift: the home's monitor process compares; this worker only reads its result
        self.drift: DriftReader | None = DriftReader(self) if config.drift.monitor != "off" else None
        if self.drift is not None:
            self.drift.start()

    @property
    def serving_version(self) -> str | None:
        """The bundle version serving now (None without a bundle)."""
        return self.runtime.version

    def _follow_active(self) -> None:
        """Follow <home>/bundles/ACTIVE: `winnow train` or another worker may have activated a
        bundle; build it and swap (a refused version is logged once and not retried)."""
        while not self._stop.wait(self.config.serving.bundle_poll_s):
            try:
                version = bundles.active_version(self.config.home)
            except BundleError as exc:
                log.error("ACTIVE pointer unreadable: %s", exc)
                continue
            if version is None or version == self.runtime.version or version == self._refused:
                continue
            if self.build_elsewhere():  # a fresh worker process starts with it and takes this one's place
                continue
            with self._swap_lock, one_build_at_a_time(self.metrics), background_priority():
                try:  # re-read under the lock: an admin activation may have just moved it
                    version = bundles.active_version(self.config.home)
                except BundleError:
                    continue
                if version is None or version == self.runtime.version:
                    continue
                try:
                    new = self._build(version)
                except (BundleError, ConfigError) as exc:
                    self._catchup.abort()
                    self._refused = version
                    self.metrics.swaps.labels("refused").inc()
                    log.error("ACTIVE bundle %s refused, %s keeps serving: %s", version, self.runtime.version, exc)
                    continue
                self._install(new)
                del new
                self.metrics.swaps.labels("ok").inc()
                log.warning("now serving bundle %s (followed ACTIVE)", version)

    # --- bundles -------------------------------------------------------------------------------
    def _initial_runtime(self) -> Runtime:
        home = self.config.home
        try:
            version = bundles.active_version(home)
        except BundleError as exc:
            log.error("ACTIVE pointer unreadable (%s): serving popularity without a bundle", exc)
            version = None
        if version is not None:
            try:
                return self._build(version)
            except (BundleError, ConfigError) as exc:
                log.error("active bundle %s refused (%s): serving popularity without a bundle", version, exc)
        return Runtime.without_bundle(self.config, self.store, item_stats=self.item_stats)

    def _build(self, version: str) -> Runtime:
        bundles.check_version(version)
        path = bundles.bundles_dir(self.config.home) / version
        if not path.is_dir():
            raise BundleError(f"no bundle {version!r} under {bundles.bundles_dir(self.config.home)}")
        try:
            with background_priority():  # requests get the GIL within 0.5 ms while this builds
                serving = getattr(getattr(self, "runtime", None), "feature_feed", None)
                bundle = bundles.load_bundle(path, reuse=self._id_maps)  # same ids files: copied
                self._id_maps = bundle.id_maps
                return Runtime.from_bundle(self.config, bundle,
                                           self._catchup.store_for_build(self.store), item_stats=self.item_stats,
                                           serving_feed=serving, snapshot=self._catchup.snapshot)
        except BaseException:
            self._catchup.abort()  # stop collecting events for a runtime that will not serve
            raise

    def _install(self, new: Runtime) -> str | None:
        """The swap (one reference assignment, after catching the new runtime's feature state up
        with events acknowledged during its build); returns the previous version. The old
        runtime is freed when the last in-flight request using it returns; its heap pages are
        then given back to the OS (swap.trim_later)."""

        def assign(rt: Runtime) -> str | None:
            previous, self.runtime = self.runtime.version, rt
            return previous

        with background_priority():  # the collector stays paused until the runtime is frozen
            previous = self._catchup.install(new, assign)
            settle()  # freeze the new runtime out of the collector's generations (swap.settle)
        trim_later()
        return previous

    def activate(self, version: str) -> tuple[str | None, float]:
        """Build the new runtime fully, mark it ACTIVE, then swap; the old one serves until then.

        Raises BundleError/ConfigError (nothing changed) when the bundle cannot serve.
        Returns (previous version, seconds spent building).
        """
        return self._swap(lambda: version, lambda: bundles.activate(self.config.home, version, verify=False))

    def rollback(self) -> tuple[str | None, float]:
        """Activate the version that was active before the current one (BundleError if none)."""
        home = self.config.home
        return self._swap(lambda: bundles.previous_version(home),
                          lambda: bundles.rollback(home, verify=False))

    def _swap(self, target: Any, mark: Any) -> tuple[str | None, float]:
        with self._swap_lock, one_build_at_a_time(self.metrics), background_priority():  # one GC pause: build to freeze
            t0 = time.perf_counter()
            try:
                new = self._build(target())  # verifies checksums, loads, builds the pipeline
                mark()  # ACTIVE pointer + history, written atomically
            except (BundleError, ConfigError):
                self._catchup.abort()
                self.metrics.swaps.labels("refused").inc()
                raise
            previous = self._install(new)  # the swap: one reference assignment
            del new
            self.metrics.swaps.labels("ok").inc()
            return previous, time.perf_counter() - t0

    def build_elsewhere(self) -> bool:
        """Whether a runtime this serving worker needs is built by a fresh worker process that then
        takes its place ([serving] rebuild = "replace" under the dispatcher; serving/worker_proc.py)
        instead of by this one while it serves: True means do not build here."""
        return self.config.serving.rebuild == "replace" and worker_proc.request_replacement()

    def build_challenger(self, version: str) -> Runtime:
        """A rollout's challenger Runtime, built like an activation's (verify, load, pipeline, state
        caught up with events acknowledged meanwhile; one worker of a server at a time) but not
        served by default: from now on acknowledged events reach its feature state too."""
        with self._swap_lock, one_build_at_a_time(self.metrics), background_priority():
            new = self._build(version)

            def hold(rt: Runtime) -> Runtime:
                self._challenger_feed = rt.feature_feed
                return rt

            self._catchup.install(new, hold)
            settle()
        return new

    def shadow_elsewhere(self) -> bool:
        """True: the server's shadow process holds a shadow rollout's challenger; do not build it here."""
        return self.shadow.elsewhere()

    def shadow_status(self, rollout_id: int) -> dict[str, Any]:
        return self.shadow.status(rollout_id)

    def drop_challenger(self) -> None:
        self._challenger_feed = None

    def adopt(self, new: Runtime) -> None:
        """Serve ``new`` (a promoted challenger already built here) without building it again."""
        with self._swap_lock, background_priority():
            if self.runtime.version != new.version:
                self._install(new)
                self.metrics.swaps.labels("ok").inc()
        self._challenger_feed = None

    def list_bundles(self) -> list[bundles.BundleInfo]:
        return bundles.list_bundles(self.config.home)

    # --- events -------------------------------------------------------------------------------
    def ingest(self, rows: list[dict[str, Any]]) -> int:
        """Durably append events (store validates; DataError on a bad row), then update state."""
        now = int(time.time())
        frame = pd.DataFrame({c: [r.get(c) for r in rows] for c in EVENT_COLUMNS})
        # from the rows, not the frame: in a batch mixing rows with and without a timestamp pandas
        # makes the column float with NaN for the missing ones (int(NaN) raised -> a 500)
        frame["timestamp"] = [now if r.get("timestamp") is None else int(r["timestamp"]) for r in rows]
        frame["value"] = frame["value"].astype(np.float64)
        users = [str(u) for u in frame["user_id"]]
        self.state.begin(users)  # a shared state publishes none of their records until apply (below)
        with self._catchup.lock:  # ordered against a runtime build's event replay (swap.CatchUp)
            try:
                written = self.store.append_events(frame, source="request")
            except BaseException as exc:
                self.state.cancel(users)  # nothing written (a bad row, the store down)
                if not isinstance(exc, StoreUnavailableError):
                    raise
                self.state.store_health.failed(exc)
                raise StoreUnavailableError(f"events not durable, nothing acknowledged: {exc}") from exc
            self._catchup.note(frame)
            feed = getattr(self.runtime, "feature_feed", None)
            cfeed = self._challenger_feed
            # the learned ranker's online features see the event at once; under the lock, so a
            # remap at a build's snapshot (swap.CatchUp) holds every event noted before it
            if feed is not None:
                feed.apply(frame)
            if cfeed is not None and (feed is None or cfeed.state is not feed.state):  # not one shared state
                cfeed.apply(frame)
        self.state.store_health.succeeded()
        self.metrics.events.inc(written)
        self.shadow.forward_events(frame)  # the shadow process's challenger (if any) sees them too
        self.state.apply(frame)
        if self.item_stats is not None:
            self.item_stats.add_events(frame)
        return written

    def _remote_events(self, frame: pd.DataFrame) -> None:
        """Events another replica acknowledged (Redis event stream): the learned ranker's
        in-process feature state counts them too (per-user records are already in Redis); under
        the catch-up lock like ``ingest``, so a remap gets each exactly once (swap.CatchUp)."""
        self.metrics.replica_events.inc(len(frame))
        catchup = getattr(self, "_catchup", None)
        if catchup is None:  # the follower started before the service built a runtime: none to feed
            return
        with catchup.lock:
            catchup.note_remote(frame)
            feed = getattr(getattr(self, "runtime", None), "feature_feed", None)
            if feed is not None:
                feed.apply(frame)
            cfeed = getattr(self, "_challenger_feed", None)
            if cfeed is not None and (feed is None or cfeed.state is not feed.state):
                cfeed.apply(frame)
        if getattr(self, "shadow", None) is not None:
            self.shadow.forward_events(frame)

    # --- recommendations -----------------------------------------------------------------------
    def recommend(self, user_id: str, *, k: int, surface: str, exclude: list[str], explain: bool,
                  categories: list[str] | None, context: dict[str, Any],
                  now: float | None = None) -> tuple[Runtime, str, Slate]:
        """Run the funnel for one user; logs the impression; returns (runtime used, request id, slate).

        During a canary the user's arm (winnow.rollout.assign) picks the champion or the
        challenger runtime; a challenger that raises is answered by the champion (the request
        is logged as a challenger error: a guardrail). During a shadow a sampled share of
        requests is also queued for the challenger, off the response path (serving/shadow.py)."""
        champion = self.runtime
        view = self.rollout.current
        now = time.time() if now is None else float(now)
        rec, degraded = self.state.lookup(user_id)  # degraded: the fallback taken for the history
        profile = None
        if champion.needs_profile or (view is not None and view.runtime is not None
                                      and view.runtime.needs_profile):  # cold-start sources
            try:
                profile = self.store.get_user(user_id)
            except StoreError as exc:
                self.state.store_health.failed(exc)
                degraded = degraded or "profile_unavailable"
        request_id = uuid.uuid4().hex
        when = datetime.fromtimestamp(now, timezone.utc)
        variants = {e.name: e.variant_of(user_id) for e in self.config.experiments if e.active(when)}
        arm: str | None = None
        error = False
        canary = view if view is not None and view.record.state == "canary" and view.runtime is not None else None
        if canary is not None:
            arm = canary.record_arm(user_id)
        rt = canary.runtime if canary is not None and arm == CHALLENGER and canary.runtime else champion

        args: dict[str, Any] = dict(  # Runtime.answer's keywords (a shadow job reruns them)
            user_id=user_id, rec=rec, profile=profile, k=k, surface=surface, exclude=exclude,
            explain=explain, categories=categories, context=context, request_id=request_id, now=now,
            variants=variants)

        def run(runtime: Runtime) -> Slate:
            return runtime.answer(**args)

        t0 = time.perf_counter()
        try:
            slate = run(rt)
        except Exception:
            if rt is champion:
                raise
            log.exception("rollout challenger %s failed; the champion answers", rt.version)
            rt, error = champion, True
            slate = run(rt)
        ms = (time.perf_counter() - t0) * 1000.0
        slate.experiments = variants
        if rt.mode != "bundle":
            slate.fallbacks.insert(0, rt.mode)
        if degraded is not None:
            slate.fallbacks.insert(0, degraded)
        for stage, secs in slate.timings.items():
            self.metrics.stage.labels(stage).observe(secs)
        for fb in slate.fallbacks:
            self.metrics.fallbacks.labels(fb).inc()
        item_ids = rt.catalog.item_ids.decode([s.item for s in slate.items])
        # exposure and propensities travel with the impression (OPE, A/B reports read them back)
        logged_ctx = {**context, "n_ranked": slate.n_ranked, "explore": slate.policy}
        if canary is not None and arm is not None:
            slate.arm = arm
            variants = {**variants, experiment_name(canary.record.id): arm}  # `winnow ab report rollout-<id>`
            logged_ctx["rollout"] = {"id": canary.record.id, "arm": arm, "ms": round(ms, 3), "error": error,
                                     "fallbacks": list(slate.fallbacks)}
            self.metrics.rollout_requests.labels(arm).inc()
        if variants:
            logged_ctx["experiments"] = variants
        if slate.candidates is not None and logs_candidates(request_id, self.config.drift.candidate_sample):
            logged_ctx["candidates"] = rt.catalog.item_ids.decode(slate.candidates)  # concept drift: candidate_recall
        impression = {
            "request_id": request_id, "user_id": user_id, "timestamp": int(now),
            "model_version": rt.version, "surface": surface, "context": logged_ctx,
            "items": [{"item_id": iid, "position": s.position, "score": s.score, "sources": s.sources,
                       "propensity": s.propensity, "rank": s.rank, "src": s.src}
                      for iid, s in zip(item_ids, slate.items, strict=True)],
        }
        self.impressions.put(impression)
        if self.item_stats is not None:
            self.item_stats.add_impression(impression)
        if view is not None and view.record.state == "shadow" and view.sampled(request_id):
            self.shadow.submit(view, args, item_ids, [s.score for s in slate.items])  # this thread or the process
        return rt, request_id, slate

    def close(self) -> None:
        self._stop.set()
        self._poller.join(30.0)  # a follow-up build in progress ends before the store closes (bounded)
        if self._poller.is_alive():
            log.warning("bundle follower still building at shutdown; closing anyway")
        if self.drift is not None:
            self.drift.close()  # bounded join of the reader thread
        self.rollout.stop()  # both join their thread (bounded) before the store below closes
        self.shadow.close()
        if self.item_stats is not None:
            self.item_stats.stop()
        self.impressions.close()
        self.state.close()
        self.store.close()
        if self.config.serving.gc_freeze:
            stop_freezing_after_full_collections()
