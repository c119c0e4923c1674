"""One serving process's side of a rollout: follow the state in the store, hold the challenger.

Every worker and replica runs one ``RolloutFollower`` thread that, every ``[rollout] poll_s``,
reads the rollout record (winnow.data.rollouts) and makes this process match it:

- a running rollout whose challenger is not loaded: the challenger's Runtime is built through
  the service's build path (``Service.build_challenger``: verify, load, pipeline, feature state
  with the event catch-up) in this thread, never on the request path (the admin routes only
  ``wake`` it) -- or, in a worker of ``winnow serve`` with ``[serving] rebuild = "replace"``,
  by a fresh worker process that then takes this one's place (``Service.build_elsewhere``,
  serving/workers.py; a process whose own build of this rollout failed retries in place);
  a *shadow* rollout's challenger is not built in a worker of ``winnow serve`` at all with
  ``[rollout] shadow_process = true``: the server's shadow process holds it
  (``Service.shadow_elsewhere``, serving/shadow_proc.py) and the view's ``runtime`` is None;
  a challenger the build refuses (BundleError, ConfigError) is rolled back with
  that error as the evidence; any other build failure (MemoryError, OSError, a store or model
  error) is recorded per rollout (``build_failures``) and retried next poll, and after
  ``max_build_failures`` of them (the record's rule, ``[rollout]``) the rollout is rolled back
  (``challenger_build_failed``, every error as evidence). No build error leaves ``refresh``:
  neither ``Service()`` at start-up nor the poll loop fails on one;
- ``current`` is one reference to a ``RolloutView`` (record + challenger runtime), replaced
  whole, so a request reads one consistent pair;
- no running rollout: the challenger is dropped; a promoted challenger the service has not
  yet taken over is handed to it (``Service.adopt``) instead of being built again;
- a promoted record whose ACTIVE write a crash interrupted (``activated`` False) is finished
  here (winnow.rollout.control.reconcile), also at start-up before the first runtime is built.

Every ``check_s`` a canary's decisions are evaluated from the store (winnow.rollout.decide) and
applied with a compare-and-set (winnow.rollout.control.transition): all processes may evaluate,
exactly one applies each decision. Assignment needs only the record (winnow.rollout.assign), so
a restarted server resumes the same step with the same arms. ``stop`` joins the thread (bounded)
so the service closes its store only after the follower let go of it.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from winnow.core.errors import BundleError, ConfigError, RolloutError, StoreError
from winnow.data.rollouts import STATES, Rollout
from winnow.rollout import control
from winnow.rollout.assign import arm_of
from winnow.rollout.arms import ArmTracker
from winnow.rollout.report import measure, tracker_for

if TYPE_CHECKING:
    from pathlib import Path

    from winnow.core.config import WinnowConfig
    from winnow.data.store import Store
    from winnow.serving.runtime import Runtime
    from winnow.serving.telemetry import Metrics

log = logging.getLogger(__name__)


def rollout_reconcile(store: Store, home: Path, when: str) -> None:
    """Finish a promotion a crash interrupted (control.reconcile: the record says promoted, ACTIVE
    was not written), so the ACTIVE follower serves the challenger; an error is logged (the next
    poll tries again; start-up goes on with ACTIVE as it is)."""
    try:
        done = control.reconcile(store, home)
    except Exception:  # a store or file-system error
        log.exception("rollout: reconciling ACTIVE with a promoted record failed %s", when)
        return
    if done is not None:
        log.warning("rollout %d: %s %s (ACTIVE %s)", done.id, done.decisions[-1].rule, when,
                    done.decisions[-1].evidence.get("active_before"))


@dataclass(frozen=True)
class RolloutView:
    """A running rollout and the challenger runtime serving it in this process (None: a shadow
    whose challenger the server's shadow process holds)."""

    record: Rollout
    runtime: Runtime | None

    def record_arm(self, user_id: str) -> str:
        """The user's arm under the record's current share (sticky hash)."""
        return arm_of(self.record, user_id)

    def sampled(self, request_id: str) -> bool:
        """Whether a shadow answers this request: the request id (uuid4 hex, uniform) read as a
        number in [0, 1) below the rollout's ``sample``."""
        return int(request_id[:8], 16) / 2.0**32 < float(self.record.params.get("sample", 0.0))


class ChallengerHost(Protocol):
    """What the follower needs of the service it follows (serving.service.Service is one; a
    Protocol, so the service may hold a follower without the two modules importing each other)."""

    config: WinnowConfig
    store: Store
    metrics: Metrics

    def build_challenger(self, version: str) -> Runtime: ...

    def build_elsewhere(self) -> bool: ...

    def adopt(self, new: Runtime) -> None: ...

    def drop_challenger(self) -> None: ...

    def shadow_elsewhere(self) -> bool: ...

    def shadow_status(self, rollout_id: int) -> dict[str, Any]: ...


class RolloutFollower:
    """Follows the store's rollout state for one service (see module docstring)."""

    def __init__(self, service: ChallengerHost) -> None:
        self.svc = service
        self.cfg = service.config.rollout
        self.current: RolloutView | None = None
        self.latest: Rollout | None = None  # the latest record read (running or not)
        self.last_evidence: dict[str, Any] | None = None
        self._lock = threading.Lock()  # one refresh at a time (poll thread, admin routes)
        self.build_failures: dict[int, list[str]] = {}  # rollout id -> errors of this process's failed builds
        self._stop = threading.Event()
        self._wake = threading.Event()  # set by ``wake``: poll now instead of at the next poll_s
        self._last_check = 0.0
        self._tracker: ArmTracker | None = None  # the canary's arms, kept incrementally between looks
        self._thread = threading.Thread(target=self._loop, name="rollout-follower", daemon=True)

    def start(self) -> None:
        """Follow the record once (building a running rollout's challenger) and start polling;
        never raises for a challenger that fails to build (see module docstring)."""
        self.refresh()
        self._thread.start()

    def wake(self) -> None:
        """Have the poll thread follow the store now (an admin route started or ended a rollout)."""
        self._wake.set()

    def stop(self, timeout: float = 10.0) -> bool:
        """Stop polling and wait up to ``timeout`` s for the thread (a build in progress finishes
        first); True when it has ended."""
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        if self._thread.is_alive():
            log.warning("rollout follower still running %.0f s after stop (a challenger build?)", timeout)
            return False
        return True

    # --- following the store -------------------------------------------------------------------
    def refresh(self, *, build: bool = True) -> Rollout | None:
        """Read the record and make this process match it (see module docstring). With
        ``build=False`` a challenger not yet held is left for the poll thread to build."""
        with self._lock:
            try:
                r = self.svc.store.rollout()
            except StoreError as exc:  # keep the state we have; the store is back next poll
                log.warning("rollout state unreadable: %s", exc)
                return self.latest
            self.latest = r
            self._gauges(r)
            if r is not None and r.state == "promoted" and r.activated is False:
                rollout_reconcile(self.svc.store, self.svc.config.home, "")
            if r is None or not r.running:
                held, self.current = self.current, None
                self.svc.drop_challenger()
                if r is not None and r.state == "promoted" and held is not None and held.runtime is not None \
                        and held.runtime.version == r.challenger:
                    self.svc.adopt(held.runtime)
                return r
            if r.state == "shadow" and self.svc.shadow_elsewhere():  # the shadow process holds it
                if self.current is None or self.current.runtime is not None:
                    self.svc.drop_challenger()
                self.current = RolloutView(r, None)
                return r
            held = self.current
            if held is not None and held.runtime is not None and held.runtime.version == r.challenger:
                self.current = RolloutView(r, held.runtime)
                return r
            self.current = None  # a view of an earlier challenger (if any) is not this rollout's
            if not build or self._stop.is_set():
                return r
            if not self.build_failures.get(r.id) and self.svc.build_elsewhere():  # a fresh worker builds it
                return r
            try:
                runtime = self.svc.build_challenger(r.challenger)
            except (BundleError, ConfigError) as exc:  # the bundle itself is refused: retrying cannot help
                log.error("rollout %d: challenger %s refused: %s", r.id, r.challenger, exc)
                self._roll_back(r, "challenger_refused", {"error": str(exc)})
                return r
            except Exception as exc:  # MemoryError, OSError, any other error: maybe passing, retried
                errors = self.build_failures.setdefault(r.id, [])
                errors.append(f"{type(exc).__name__}: {exc}"[:300])
                limit = int(r.params.get("max_build_failures", self.cfg.max_build_failures))
                log.error("rollout %d: challenger %s failed to build (%d of %d): %s", r.id, r.challenger,
                          len(errors), limit, errors[-1])
                if len(errors) >= limit:
                    self._roll_back(r, "challenger_build_failed", {"errors": list(errors), "attempts": len(errors)})
                return r
            self.build_failures.pop(r.id, None)
            self.current = RolloutView(r, runtime)
            log.warning("rollout %d: challenger %s loaded (%s)", r.id, r.challenger, r.state)
            return r

    def here(self) -> dict[str, Any]:
        """This process's side of the rollout: the challenger it holds, its failed builds and the
        record it follows now (``following``: id, revision, state, step, share of the record its
        requests are assigned by; None before the first read). Two replicas following the same
        revision assign every user the same arm (winnow.rollout.assign)."""
        view = self.current
        latest = self.latest
        rid = latest.id if latest is not None else None
        following = None if latest is None else {"id": latest.id, "revision": latest.revision, "state": latest.state,
                                                 "step": latest.step, "share": latest.share}
        shadow: dict[str, Any] | None = None
        if latest is not None and latest.mode == "shadow":
            shadow = self.svc.shadow_status(latest.id)
        loaded = None
        if view is not None and view.runtime is not None:
            loaded = view.runtime.version
        elif view is not None and shadow is not None and shadow.get("process"):  # the shadow process holds it
            loaded = shadow["process"].get("challenger")
        return {"challenger_loaded": loaded,
                "build_failures": list(self.build_failures.get(rid, [])) if rid is not None else [],
                "following": following, "shadow": shadow}

    def _roll_back(self, r: Rollout, rule: str, evidence: dict[str, Any]) -> None:
        """Roll ``r`` back (compare-and-set: another process may have done it first) and drop the
        challenger; a store that refuses the write is logged (the next poll tries again)."""
        self.current = None
        self.svc.drop_challenger()
        try:
            control.transition(self.svc.store, self.svc.config.home, r, action="roll_back", rule=rule,
                               evidence=evidence)
        except Exception:  # StoreError and the like: the record stays running; the next poll retries
            log.exception("rollout %d: roll-back (%s) not written", r.id, rule)

    def _gauges(self, r: Rollout | None) -> None:
        m = self.svc.metrics
        m.rollout_share.set(r.share if r is not None else 0.0)
        for state in STATES:
            m.rollout_state.labels(state).set(1.0 if r is not None and r.state == state else 0.0)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.cfg.poll_s)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self.refresh()
                view = self.current
                check = float(view.record.params.get("check_s", self.cfg.check_s)) if view else self.cfg.check_s
                if view is not None and view.record.state == "canary" and time.monotonic() - self._last_check >= check:
                    self._last_check = time.monotonic()
                    self.decide()
            except Exception:  # the follower must outlive any one failure (store outage, bad record)
                log.exception("rollout follower")

    # --- decisions -----------------------------------------------------------------------------
    def arm_tracker(self) -> ArmTracker | None:
        """This process's incremental aggregate of the latest canary's arms (None: no canary);
        a check or status look reads only the rows that arrived since the previous one."""
        r = self.latest
        if r is None or r.mode != "canary":
            return None
        t = self._tracker
        if t is None or t.rollout_id != r.id:
            t = self._tracker = tracker_for(self.svc.config, r)
        return t

    def evidence(self, r: Rollout) -> tuple[Any, dict[str, Any]]:
        """(verdict or None, evidence) of canary ``r`` now, from the store (incrementally)."""
        verdict, evidence = measure(self.svc.store, self.svc.config, r, tracker=self.arm_tracker())
        for arm, values in evidence["arms"].items():
            for key in ("error_rate", "empty_rate", "fallback_rate", "p99_ms"):
                if values.get(key) is not None:
                    self.svc.metrics.rollout_guardrail.labels(arm, key).set(values[key])
        return verdict, evidence

    def decide(self) -> Rollout | None:
        """Evaluate the running canary and apply the decision due, if any (compare-and-set)."""
        view = self.current
        if view is None or view.record.state != "canary":
            return None
        r = self.svc.store.rollout(view.record.id)
        if r is None or r.state != "canary":
            return None
        verdict, evidence = self.evidence(r)
        self.last_evidence = evidence
        if verdict is None:
            return None
        try:
            new = control.transition(self.svc.store, self.svc.config.home, r, action=verdict.action,
                                     rule=verdict.rule, evidence=evidence)
        except RolloutError as exc:  # e.g. the challenger no longer verifies at promotion
            new = control.transition(self.svc.store, self.svc.config.home, r, action="roll_back",
                                     rule="promotion_refused", evidence={"error": str(exc), **evidence})
        if new is not None:
            log.warning("rollout %d: %s (%s) -> %s", r.id, verdict.action, verdict.rule, new.state)
            self.refresh()
        return new
