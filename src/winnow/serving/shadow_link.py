"""A serving worker's link to the shadow process (serving/shadow_proc.py): shadow jobs and the
events the worker acknowledged, sent as Unix datagrams.

Under ``winnow serve``'s dispatcher with ``[rollout] shadow_process = true`` (the default), a
shadow rollout's challenger is held by one process of its own instead of by every worker:
the worker answers with its champion, then ``submit``s the request (what ``Runtime.answer``
ran with, minus the user's record and profile, which the shadow process reads itself) and the
champion's slate. The worker does nothing else for the shadow: no thread, no challenger, no
GIL shared with a challenger's computation.

Contract:
- ``submit`` and ``forward_events`` never block and never raise: a datagram socket that is not
  there (no shadow process yet, or it exited) is ``"unavailable"``; a full queue in the shadow
  process's socket is ``"dropped"``; a request too large for one datagram is ``"too_large"``;
  each outcome is counted per rollout (``counts``) and in ``winnow_rollout_shadow_total``;
- jobs are sent only once the shadow process is ready (its marker ``<socket>.ready`` exists:
  it holds the challenger); events are sent whenever its socket exists, so a challenger being
  built gets those acknowledged meanwhile (serving.swap.CatchUp); an event batch is split into
  datagrams of at most ``EVENTS_PER_DATAGRAM`` rows; a lost one is counted
  (``events_lost``): the challenger's live ranker features then miss those events;
- the messages are JSON (orjson): ``{"t": "job", "rollout", "challenger", "args", "ids",
  "scores"}`` and ``{"t": "events", "cols": {column: values}}``.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
from collections import Counter
from typing import Any

import orjson
import pandas as pd

from winnow.core.config import WinnowConfig
from winnow.data.schema import EVENT_COLUMNS
from winnow.data.store import Store
from winnow.serving import worker_proc
from winnow.serving.busy_board import Busy
from winnow.serving.shadow import SAMPLING_NOTE, ShadowWorker, shadow_job
from winnow.serving.telemetry import Metrics
from winnow.serving.workers import SHADOW_ENV

log = logging.getLogger(__name__)
EVENTS_PER_DATAGRAM = 500
PROCESS_NOTE = ("shadow jobs run in the server's shadow process at idle CPU priority within its budget "
                "([rollout] shadow_max_cpu_share x workers); jobs sent while it was busy may be dropped: "
                "the shadowed sample leans toward quiet moments")
JOB_ARGS = ("user_id", "k", "surface", "exclude", "explain", "categories", "context", "request_id", "now",
            "variants")  # Runtime.answer's keywords a job carries (not rec, profile: read there)


class ShadowLink:
    """The worker's side of the shadow process's socket (see module docstring)."""

    def __init__(self, path: str, metrics: Metrics) -> None:
        self.path = path
        self.ready_path = path + ".ready"
        self.metrics = metrics
        self.counts: dict[int, Counter[str]] = {}  # rollout id -> sent / dropped / unavailable / too_large
        self.events_lost = 0
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.setblocking(False)

    def ready(self) -> bool:
        """Whether the shadow process holds its challenger and takes jobs."""
        return os.path.exists(self.ready_path)

    def _send(self, data: bytes) -> str:
        try:
            self._sock.sendto(data, self.path)
            return "sent"
        except BlockingIOError:  # its queue is full (net.unix.max_dgram_qlen datagrams)
            return "dropped"
        except OSError as exc:  # ENOENT, ECONNREFUSED: no process reads the socket
            return "too_large" if exc.errno == errno.EMSGSIZE else "unavailable"

    def submit(self, rollout_id: int, challenger: str, args: dict[str, Any], champion_ids: list[str],
               champion_scores: list[float]) -> str:
        """Send one shadow job; returns (and counts) the outcome."""
        if not self.ready():
            result = "unavailable"
        else:
            msg = {"t": "job", "rollout": rollout_id, "challenger": challenger,
                   "args": {key: args[key] for key in JOB_ARGS}, "ids": champion_ids, "scores": champion_scores}
            try:
                data = orjson.dumps(msg, option=orjson.OPT_SERIALIZE_NUMPY)
            except TypeError:  # a context value JSON cannot carry
                result = "too_large"
            else:
                result = self._send(data)
        self.counts.setdefault(rollout_id, Counter())[result] += 1
        self.metrics.rollout_shadow.labels(result).inc()
        return result

    def forward_events(self, frame: pd.DataFrame) -> int:
        """Send acknowledged events to the shadow process, if one runs; returns how many were
        lost (0 when none runs: its build reads them from the store)."""
        if not os.path.exists(self.path):
            return 0
        lost = 0
        for start in range(0, len(frame), EVENTS_PER_DATAGRAM):
            part = frame.iloc[start:start + EVENTS_PER_DATAGRAM]
            cols = {c: part[c].tolist() for c in EVENT_COLUMNS}
            if self._send(orjson.dumps({"t": "events", "cols": cols})) != "sent":
                lost += len(part)
        if lost:
            if not self.events_lost:
                log.warning("shadow process: %d acknowledged events not delivered (its queue is full); "
                            "its challenger's live features miss them", lost)
            self.events_lost += lost
            self.metrics.rollout_shadow.labels("events_lost").inc(lost)
        return lost

    def process(self) -> dict[str, Any] | None:
        """What the shadow process last wrote in its ready marker (pid, rollout, challenger, its
        job counts for the whole server, unix time), or None when it is not ready."""
        try:
            with open(self.ready_path, "rb") as f:
                out: dict[str, Any] = orjson.loads(f.read())
        except (OSError, orjson.JSONDecodeError):
            return None
        return out

    def status(self, rollout_id: int) -> dict[str, Any]:
        """The rollout status's ``here.shadow`` for a worker whose shadow jobs go to the process:
        the classic counts (``ran``, ``skipped_budget``, ``dropped``... as the process counted
        them for every worker) plus this worker's sends (``sent``, ``unavailable``,
        ``too_large``, and ``dropped`` adds its full-queue drops) and ``events_lost``."""
        proc = self.process()
        mine_proc = proc is not None and proc.get("rollout") == rollout_id
        pc: dict[str, int] = proc["counts"] if proc is not None and mine_proc else {}
        mine = self.counts.get(rollout_id, Counter())
        out: dict[str, Any] = {k: int(pc.get(k, 0)) for k in ("ran", "skipped_busy", "skipped_budget", "preempted")}
        out["dropped"] = int(pc.get("dropped", 0)) + mine["dropped"]
        out.update({k: mine[k] for k in ("sent", "unavailable", "too_large")})
        out["events_lost"] = self.events_lost
        out["process"] = {**{k: proc.get(k) for k in ("pid", "challenger", "at")}, "counts": pc} \
            if proc is not None and mine_proc else None
        out["note"] = PROCESS_NOTE
        return out

    def close(self) -> None:
        self._sock.close()


class ShadowJobs:
    """Where a serving worker's shadow jobs go: to its own ``ShadowWorker`` thread when it holds
    the challenger (a single-process server, ``[rollout] shadow_process = false``), else to the
    server's shadow process (``link``). ``elsewhere()`` asks the dispatcher for that process."""

    def __init__(self, store: Store, metrics: Metrics, config: WinnowConfig, busy: Busy) -> None:
        rc = config.rollout
        self.thread = ShadowWorker(store, metrics, capacity=rc.shadow_queue, batch=rc.shadow_batch, busy=busy,
                                   max_cpu_share=rc.shadow_max_cpu_share)
        self.link = link_from_env(metrics) if rc.shadow_process else None

    def elsewhere(self) -> bool:
        """Whether the shadow process holds a shadow rollout's challenger (asked for now): True
        means this worker must not build it."""
        return self.link is not None and worker_proc.request_shadow()

    def submit(self, view: Any, args: dict[str, Any], champion_ids: list[str], champion_scores: list[float]) -> None:
        """Queue the shadow job of one request of rollout ``view`` (serving.rollout_follower.RolloutView)."""
        if view.runtime is not None:
            self.thread.submit(view.record.id, shadow_job(view.runtime, args, champion_ids, champion_scores,
                                                          pause=self.thread.yield_to_requests))
        elif self.link is not None:
            self.link.submit(view.record.id, view.record.challenger, args, champion_ids, champion_scores)

    def forward_events(self, frame: pd.DataFrame) -> None:
        if self.link is not None:
            self.link.forward_events(frame)

    def status(self, rollout_id: int) -> dict[str, Any]:
        """The rollout status's ``here.shadow``: the thread's counts (ran / skipped_busy /
        skipped_budget / preempted / dropped) when it ran the rollout's jobs, else the shadow
        process's (``ShadowLink.status``)."""
        if self.link is not None and rollout_id not in self.thread.counts:
            return self.link.status(rollout_id)
        counts: dict[str, int] = self.thread.counts.get(rollout_id, {})
        out: dict[str, Any] = {k: int(counts.get(k, 0)) for k in ("ran", "skipped_busy", "skipped_budget",
                                                                  "preempted", "dropped")}
        return {**out, "note": SAMPLING_NOTE}

    def close(self) -> None:
        self.thread.close()
        if self.link is not None:
            self.link.close()


def link_from_env(metrics: Metrics) -> ShadowLink | None:
    """The link named by the dispatcher (``$WINNOW_SHADOW_SOCKET``); None outside ``winnow serve``'s
    workers."""
    path = os.environ.get(SHADOW_ENV)
    return ShadowLink(path, metrics) if path else None
