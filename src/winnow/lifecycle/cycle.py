"""One autopilot cycle: the named stages in order, each recorded, skipped when done with the
same inputs, resumed after the last completed one.

Stages: snapshot -> datasets -> fit -> gate -> write -> handoff (one module each, see
winnow.lifecycle). A stage's inputs are the configuration's hash and the hash of the outputs it
depends on; the record keeps inputs (with their sha256), outputs, wall / CPU seconds and peak RSS
(training/progress.py's StageClock). Rules:

- a stage recorded "done" whose inputs hash equals the current one is skipped ("done earlier");
  a stage that runs again invalidates the stages after it;
- a stage that raises stops the cycle: the record says which stage and why (status "failed"),
  it is saved atomically, and LifecycleError is raised. Nothing is half-written: bundles appear
  whole or not at all, the record is replaced atomically;
- the next run resumes the newest unfinished cycle after its last completed stage (``attempts``
  counts the runs; a failure at ``[lifecycle] max_attempts`` is final: ``resumable`` False,
  ``gave_up``; the long-running loop waits ``retry_backoff_s`` x 2^(attempts-1) between them), unless the
  events below its cut changed (then it is "abandoned" and a new cycle starts), or it failed on
  a data problem (DataError: the same snapshot would fail again) -- then a new snapshot is taken;
- a new cycle whose snapshot and configuration equal the last finished cycle's does nothing and
  says so ("unchanged").
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from winnow.core.config import WinnowConfig
from winnow.core.errors import DataError, LifecycleError
from winnow.data.store import Store
from winnow.lifecycle import datasets
from winnow.lifecycle.fit import fit_challenger
from winnow.lifecycle.gate import run_gate
from winnow.lifecycle.handoff import hand_off, write_verdict
from winnow.cyclelog.record import STAGES, digest, load_records, new_record, save_record
from winnow.lifecycle.snapshot import events_digest, same_data, take_snapshot
from winnow.training.progress import StageClock

# what each stage's inputs hash covers, besides the configuration: the stages whose outputs it reads
DEPENDS = {"snapshot": (), "datasets": ("snapshot",), "fit": ("snapshot", "datasets"),
           "gate": ("datasets", "fit"), "write": ("fit", "gate"), "handoff": ("fit", "gate", "write")}


@dataclass
class CycleOutcome:
    """What ``run_once`` did: status "done" | "unchanged", the cycle id (None when unchanged),
    a one-line message, and the record."""

    status: str
    cycle: str | None
    message: str
    record: dict[str, Any] | None


class _Cycle:
    """One run over a cycle record (module docstring); ``data`` is built once per run."""

    def __init__(self, config: WinnowConfig, store: Store, record: dict[str, Any],
                 say: Callable[[str], None], snapshot: dict[str, Any] | None = None,
                 now: float | None = None) -> None:
        self.config, self.store, self.record, self.say = config, store, record, say
        self._snapshot, self._now = snapshot, now
        self._data: datasets.CycleData | None = None

    def out(self, stage: str) -> dict[str, Any]:
        return dict(self.record["stages"][stage]["outputs"])

    def data(self) -> datasets.CycleData:
        if self._data is None:
            self._data = datasets.build(self.store, self.config, int(self.out("snapshot")["cut"]))
            done = self.record["stages"].get("datasets", {})
            if done.get("status") == "done" and done["outputs"] != datasets.summary(self._data):
                raise LifecycleError("the snapshot read again differs from the datasets stage's record "
                                     "(the store changed below the cut)")
        return self._data

    def run_stage(self, name: str) -> dict[str, Any]:
        if name == "snapshot":
            return self._snapshot or take_snapshot(self.store)
        if name == "datasets":
            return datasets.summary(self.data())
        if name == "fit":
            return fit_challenger(self.config, self.store, cycle=self.record["cycle"],
                                  snapshot_sha256=self.out("snapshot")["events_sha256"],
                                  until=int(self.out("datasets")["holdout_start"]), say=self.say)
        if name == "gate":
            return run_gate(self.config, self.store, self.data(), self.out("fit")["version"])
        if name == "write":
            return write_verdict(self.config, self.out("fit")["version"], self.out("gate"))
        return hand_off(self.config, self.store, self.out("fit")["version"], self.out("gate"), now=self._now)

    def inputs(self, name: str) -> dict[str, Any]:
        ins: dict[str, Any] = {"config": self.record["config_sha256"]}
        for dep in DEPENDS[name]:
            ins[dep] = digest(self.record["stages"][dep]["outputs"])
        return {**ins, "sha256": digest(ins)}

    def run(self) -> None:
        rec = self.record
        clock = StageClock(list(STAGES), events=1, say=self.say)
        try:
            for i, name in enumerate(STAGES):
                ins = self.inputs(name)
                old = rec["stages"].get(name)
                if old and old["status"] == "done" and old["inputs"]["sha256"] == ins["sha256"]:
                    old["skipped_runs"] = old.get("skipped_runs", 0) + 1
                    self.say(f"[{name}] skipped: done in an earlier run with the same inputs")
                    continue
                for later in STAGES[i:]:  # this stage runs (again): what came after is stale
                    rec["stages"].pop(later, None)
                entry: dict[str, Any] = {"status": "running", "inputs": ins, "outputs": None,
                                         "runs": (old or {}).get("runs", 0) + 1}
                rec["stages"][name] = entry
                try:
                    with clock.stage(name):
                        outputs = self.run_stage(name)
                except BaseException as exc:
                    entry.update(status="failed", error=f"{type(exc).__name__}: {exc}",
                                 **clock.report().get(name, {}))
                    rec.update(status="failed", reason=f"stage {name}: {type(exc).__name__}: {exc}",
                               resumable=not isinstance(exc, DataError), failed_at=int(time.time()))
                    limit = self.config.lifecycle.max_attempts
                    if rec["resumable"] and int(rec.get("attempts", 1)) >= limit:
                        rec.update(resumable=False, gave_up=True,
                                   reason=f"{rec['reason']} (gave up after {rec.get('attempts', 1)} attempts: "
                                          f"[lifecycle] max_attempts = {limit}; it runs again when the data "
                                          "or the configuration change)")
                    save_record(self.config.home, rec)
                    if isinstance(exc, Exception):
                        final = f" (gave up after {rec['attempts']} attempts)" if rec.get("gave_up") else ""
                        raise LifecycleError(f"cycle {rec['cycle']} stopped at stage {name!r}: {exc}{final}") from exc
                    raise
                entry.update(status="done", outputs=outputs, finished_at=int(time.time()),
                             **clock.report()[name])
                if name == "gate":
                    rec["gate"] = {k: outputs[k] for k in ("passed", "reasons", "champion", "challenger", "metrics",
                                                           "champion_saw_holdout")}
                    rec["gate"]["ope"] = outputs["ope"]
                save_record(self.config.home, rec)
            rec.update(status="done", reason=None, finished_at=int(time.time()))
            rec.pop("resumable", None)
            save_record(self.config.home, rec)
        finally:
            clock.summary()


def config_digest(config: WinnowConfig) -> str:
    """sha256 of the validated configuration (a cycle's inputs include it)."""
    return digest(config.model_dump(mode="json"))


def _pending(config: WinnowConfig, store: Store, records: list[dict[str, Any]],
             say: Callable[[str], None]) -> dict[str, Any] | None:
    """The newest unfinished cycle to resume, or None (abandoning one whose data changed)."""
    if not records or records[-1]["status"] not in ("running", "failed"):
        return None
    rec = records[-1]
    if rec["status"] == "failed" and not rec.get("resumable", True):
        return None
    snap = rec["stages"].get("snapshot")
    if not snap or snap["status"] != "done":
        return None if not snap else rec
    if events_digest(store, int(snap["outputs"]["cut"]))[0] != snap["outputs"]["events_sha256"]:
        rec.update(status="abandoned", reason="the events below its cut changed since its snapshot",
                   finished_at=int(time.time()))
        save_record(config.home, rec)
        say(f"cycle {rec['cycle']} abandoned: {rec['reason']}")
        return None
    return rec


def run_once(config: WinnowConfig, store: Store, *, say: Callable[[str], None] = print,
             trigger: str = "manual (winnow autopilot --once)", now: float | None = None) -> CycleOutcome:
    """Run (or resume) one cycle; LifecycleError when a stage fails (module docstring).
    ``trigger`` (why it runs) is recorded in a new cycle's record; ``attempts`` counts its runs.
    ``now``: the hand-off's clock for a canary it starts (default wall time; bench/lifecycle.py
    passes its simulated day)."""
    records = load_records(config.home)
    cfg = config_digest(config)
    rec = _pending(config, store, records, say)
    snapshot = None
    if rec is not None:
        rec.update(status="running", config_sha256=cfg,  # a changed configuration re-runs every stage
                   attempts=int(rec.get("attempts", 1)) + 1)
        say(f"resuming cycle {rec['cycle']} after its last completed stage")
    else:
        snapshot = take_snapshot(store)
        ended = [r for r in records if r["status"] in ("done", "failed")]
        prev = ended[-1] if ended else None
        snap = (prev or {}).get("stages", {}).get("snapshot", {})
        if prev and prev["config_sha256"] == cfg and snap.get("status") == "done" \
                and same_data(snap["outputs"], snapshot):
            what = "finished" if prev["status"] == "done" else f"failed ({prev['reason']})"
            msg = (f"nothing to do: no new data since cycle {prev['cycle']} (cut {snapshot['cut']}, "
                   f"{snapshot['events']:,} events, same configuration), which {what}")
            say(msg)
            return CycleOutcome("unchanged", None, msg, None)
        rec = new_record(cfg)
        rec.update(trigger=trigger, attempts=1)
        say(f"cycle {rec['cycle']}: new snapshot at cut {snapshot['cut']} ({snapshot['events']:,} events)")
    _Cycle(config, store, rec, say, snapshot, now).run()
    hand = rec["stages"]["handoff"]["outputs"]
    msg = f"cycle {rec['cycle']} done: challenger {hand['version']} {hand['action']}"
    say(msg)
    return CycleOutcome("done", rec["cycle"], msg, rec)
