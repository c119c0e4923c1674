"""The shadow process of ``winnow serve``: one process that holds a shadow rollout's challenger
and answers the workers' sampled requests, so that the workers serving the champion share
neither their GIL nor their memory with it.

Started by the dispatcher (serving/workers.py) when a worker following a shadow rollout asks
(``[rollout] shadow_process = true``, the default under the dispatcher); the workers send it
jobs and acknowledged events over the Unix datagram socket ``$WINNOW_SHADOW_SOCKET``
(serving/shadow_link.py).

Contract:
- it binds the socket, then builds the challenger of the running shadow rollout (verify, load,
  pipeline, feature state; under the server's build lock like any worker's build) in a thread
  of the SCHED_IDLE class; events that arrive meanwhile reach the new feature state
  (serving.swap.CatchUp). Once it holds the challenger it writes the ready marker
  ``<socket>.ready`` (JSON: pid, rollout, challenger, counts; rewritten every ``[rollout]
  poll_s``), and the workers start sending jobs;
- one thread receives datagrams at normal priority (it only decodes, applies events to the
  challenger's live state and queues jobs); the jobs run in a ``ShadowWorker`` thread of the
  SCHED_IDLE class: the user's record and profile read here, ``Runtime.answer``, the comparison
  record written to the store in batches by the main thread (normal priority, every ``poll_s``)
  -- as in a worker (serving/shadow.py), with the budget
  ``[rollout] shadow_max_cpu_share`` x ``[serving] workers`` of one core's CPU seconds, and the
  idle rule made server-wide: a job starts only while no worker has a request in flight (the
  busy board, serving/busy_board.py; else ``skipped_busy`` after 50 ms) and waits between the
  challenger's stages while one has (``preempted`` after 200 ms);
- it exits (status 0) when the store's rollout is no longer that shadow (ended, promoted,
  another rollout), when the dispatcher is gone (end of file on its channel) or on SIGTERM,
  after removing the ready marker and writing the records it holds (bounded);
- a challenger the build refuses (BundleError, ConfigError) rolls the rollout back
  (``challenger_refused``, the error as evidence) and ends it with status 0; any other build
  failure ends it with status 1 (the dispatcher starts one again later, telling it its attempt
  number), and the failure that makes ``max_build_failures`` of them in a row (the record's
  rule, ``[rollout]``) rolls the rollout back (``challenger_build_failed``) -- as the workers'
  follower does for a challenger it builds (serving/rollout_follower.py).
"""

from __future__ import annotations

import logging
import os
import queue
import select
import signal
import socket
import sys
import threading
import time
from typing import Any

import numpy as np
import orjson
import pandas as pd

from winnow import bundle as bundles
from winnow.core.config import WinnowConfig, load_config
from winnow.core.errors import BundleError, ConfigError, StoreError
from winnow.data.open_store import open_store
from winnow.data.rollouts import Rollout
from winnow.serving.busy_board import BoardBusy, Busy, board_from_env
from winnow.serving.item_stats import ItemStats, needs_item_stats
from winnow.serving.online_state import ResilientState, open_backend
from winnow.serving.runtime import Runtime
from winnow.serving.shadow import ShadowWorker, shadow_job, write_records
from winnow.serving.swap import CatchUp, one_build_at_a_time, settle
from winnow.serving.telemetry import Metrics
from winnow.serving.worker_proc import at_idle_priority
from winnow.rollout import control
from winnow.serving.workers import SHADOW_ATTEMPT_ENV, SHADOW_ENV

log = logging.getLogger(__name__)


class ShadowHost:
    """The shadow process's state and loops (see module docstring)."""

    def __init__(self, config: WinnowConfig, path: str, *, attempt: int = 1) -> None:
        """``attempt``: 1 + the consecutive failures of shadow processes before this one."""
        self.config = config
        self.attempt = attempt
        self.path, self.ready_path = path, path + ".ready"
        self.store = open_store(config.store_url(), busy_timeout_ms=config.store.busy_timeout_ms)
        self.metrics = Metrics()
        self.state = ResilientState(open_backend(config, self.store), self.store, config=config, metrics=self.metrics)
        self.item_stats: ItemStats | None = None
        if needs_item_stats(config):
            self.item_stats = ItemStats.from_store(self.store, config.feedback)
            self.item_stats.start(self.store)
        rc = config.rollout
        found = board_from_env()  # every worker's requests in flight: jobs run only while there are none
        self.busy = BoardBusy(found[0]) if found is not None else Busy()
        self.worker = ShadowWorker(self.store, self.metrics, capacity=rc.shadow_queue, batch=rc.shadow_batch,
                                   busy=self.busy, max_cpu_share=rc.shadow_max_cpu_share * max(1, config.serving.workers),
                                   idle_class=True, write=lambda rid, recs: self._records.put((rid, list(recs))))
        self._records: queue.SimpleQueue[tuple[int, list[dict[str, Any]]]] = queue.SimpleQueue()
        self.catchup = CatchUp()
        self.runtime: Runtime | None = None
        self.rollout: Rollout | None = None
        self.stop = threading.Event()
        self.ready = threading.Event()  # it holds the challenger (the marker is written)
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._receiver = threading.Thread(target=self._receive, name="shadow-receiver", daemon=True)

    def run(self, chan: socket.socket | None = None) -> int:
        """Serve the running shadow rollout until it ends (module docstring); the exit status."""
        r = self.store.rollout()
        if r is None or r.state != "shadow":
            log.warning("shadow process: no shadow rollout runs; exiting")
            return 0
        self.rollout = r
        for p in (self.ready_path, self.path):
            if os.path.exists(p):
                os.unlink(p)
        self._sock.bind(self.path)
        self._sock.settimeout(0.5)
        self._receiver.start()
        try:
            rt = at_idle_priority(lambda: self._build(r.challenger))
        except (BundleError, ConfigError) as exc:  # the bundle itself is refused: retrying cannot help
            log.error("shadow process: challenger %s refused: %s", r.challenger, exc)
            self._roll_back(r, "challenger_refused", {"error": str(exc)})
            return 0
        except Exception as exc:
            log.exception("shadow process: challenger %s not built (attempt %d)", r.challenger, self.attempt)
            limit = int(r.params.get("max_build_failures", self.config.rollout.max_build_failures))
            if self.attempt >= limit:
                self._roll_back(r, "challenger_build_failed", {"errors": [f"{type(exc).__name__}: {exc}"[:300]],
                                                               "attempts": self.attempt})
            return 1
        self.catchup.install(rt, self._hold)
        del rt
        log.warning("shadow process %d: rollout %d, challenger %s loaded", os.getpid(), r.id, r.challenger)
        while not self.stop.is_set():
            self._write_marker()
            self.ready.set()
            if chan is not None and select.select([chan], [], [], self.config.rollout.poll_s)[0] \
                    and not chan.recv(64):
                break  # the dispatcher is gone
            if chan is None:
                self.stop.wait(self.config.rollout.poll_s)
            self._write_records()
            if not self._still_running():
                break
        return 0

    def _write_records(self) -> None:
        """Write the records the job thread handed over (here, at normal priority: a SCHED_IDLE
        thread holding the store's write lock could be starved with it on a busy machine and hold
        up the workers' impression writes)."""
        while True:
            try:
                rid, records = self._records.get_nowait()
            except queue.Empty:
                return
            write_records(self.store, self.metrics, rid, records)

    def _roll_back(self, r: Rollout, rule: str, evidence: dict[str, Any]) -> None:
        try:  # compare-and-set: a worker or an operator may have ended it first
            control.transition(self.store, self.config.home, r, action="roll_back", rule=rule, evidence=evidence)
        except Exception:
            log.exception("shadow process: roll-back of rollout %d (%s) not written", r.id, rule)

    def _hold(self, rt: Runtime) -> None:
        self.runtime = rt

    def _build(self, version: str) -> Runtime:
        bundles.check_version(version)
        with one_build_at_a_time(self.metrics):
            bundle = bundles.load_bundle(bundles.bundles_dir(self.config.home) / version)
            rt = Runtime.from_bundle(self.config, bundle, self.catchup.store_for_build(self.store),
                                     item_stats=self.item_stats)
        settle()
        return rt

    def _still_running(self) -> bool:
        try:
            r = self.store.rollout()
        except StoreError as exc:  # keep going; the store is back next poll
            log.warning("shadow process: rollout state unreadable: %s", exc)
            return True
        mine = self.rollout
        return r is not None and mine is not None and r.id == mine.id and r.state == "shadow"

    def _write_marker(self) -> None:
        """The ready marker, replaced atomically: what the workers' rollout status shows."""
        r, rt = self.rollout, self.runtime
        if r is None or rt is None:
            return
        counts = dict(self.worker.counts.get(r.id, {}))
        data = {"pid": os.getpid(), "rollout": r.id, "challenger": rt.version, "at": time.time(), "counts": counts}
        tmp = f"{self.ready_path}.{os.getpid()}"
        with open(tmp, "wb") as f:
            f.write(orjson.dumps(data))
        os.replace(tmp, self.ready_path)

    # --- the receiver thread -------------------------------------------------------------------
    def _receive(self) -> None:
        while not self.stop.is_set():
            try:
                data = self._sock.recv(1 << 20)
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                msg = orjson.loads(data)
                if msg.get("t") == "events":
                    self._events(pd.DataFrame(msg["cols"]))
                elif msg.get("t") == "job":
                    self._job(msg)
            except Exception:  # one bad datagram must not end the receiver
                log.exception("shadow process: a message not handled")

    def _events(self, frame: pd.DataFrame) -> None:
        frame["timestamp"] = frame["timestamp"].astype(np.int64)
        frame["value"] = frame["value"].astype(np.float64)
        with self.catchup.lock:  # a build in progress gets them at install (serving.swap.CatchUp)
            self.catchup.note(frame)
            feed = getattr(self.runtime, "feature_feed", None)
            if feed is not None:
                feed.apply(frame)
        # not self.state.apply: the worker applied them to the shared online state already (Redis:
        # applying again would count them twice; in-process records are checked against the store)
        if self.item_stats is not None:
            self.item_stats.add_events(frame)

    def _job(self, msg: dict[str, Any]) -> None:
        rt, r = self.runtime, self.rollout
        self.worker.count(int(msg["rollout"]), "received")  # each then ran, skipped, preempted, dropped or stale
        if rt is None or r is None or msg["rollout"] != r.id or msg["challenger"] != rt.version:
            self.worker.count(int(msg["rollout"]), "stale")
            return
        args, ids, scores = msg["args"], msg["ids"], msg["scores"]

        def job() -> dict[str, Any]:  # in the job thread (SCHED_IDLE): the reads too
            rec, _ = self.state.lookup(args["user_id"])
            profile = None
            if rt.needs_profile:
                try:
                    profile = self.store.get_user(args["user_id"])
                except StoreError:
                    profile = None
            return shadow_job(rt, {**args, "rec": rec, "profile": profile}, ids, scores,
                              pause=self.worker.yield_to_requests)()

        self.worker.submit(r.id, job)

    def close(self) -> None:
        """Remove the ready marker (the workers stop sending), write what is held, let go."""
        self.stop.set()
        try:
            os.unlink(self.ready_path)
        except FileNotFoundError:
            pass
        self.worker.close(timeout=10.0)
        self._write_records()
        self._sock.close()
        if self._receiver.is_alive():
            self._receiver.join(2.0)
        if self.item_stats is not None:
            self.item_stats.stop()
        self.state.close()
        self.store.close()


def main(fd: int) -> None:
    """The shadow process (started as ``python -m winnow.serving.worker_proc FD shadow``, which
    imports this module at idle priority): ``fd`` is its channel to the dispatcher (end of file:
    it is gone)."""
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    chan = socket.socket(fileno=fd)
    host = ShadowHost(load_config(os.environ.get("WINNOW_HOME")), os.environ[SHADOW_ENV],
                      attempt=int(os.environ.get(SHADOW_ATTEMPT_ENV, "1")))
    signal.signal(signal.SIGTERM, lambda *_: host.stop.set())
    code = 1
    try:
        code = host.run(chan)
    finally:
        host.close()
    sys.exit(code)


