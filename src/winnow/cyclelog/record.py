"""Cycle records of ``winnow autopilot``: data with a manifest, one JSON file per cycle.

``<home>/lifecycle/cycles/<cycle>.json`` (replaced atomically after every stage, core/files.py):

    format "winnow-cycle", schema_version, cycle (id, sortable), started_at, finished_at,
    status ("running" | "failed" | "done" | "abandoned"), reason (why it failed / was abandoned),
    config_sha256 (the validated configuration the cycle ran with),
    trigger (why it started: "first cycle", "schedule: ...", "trigger: ...", "drift: ...", manual),
    attempts (runs of this cycle, resumes included), failed_at, resumable, gave_up (attempt limit),
    stages {name: {status ("done" | "failed"), inputs {..., "sha256"}, outputs {...},
                   wall_s, cpu_s, peak_rss_mib, finished_at, runs, skipped_runs, error}},
    gate (the gate stage's verdict, copied for `winnow autopilot status`)

A record is never half-written: a reader sees the previous complete version or the new one.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import time
from pathlib import Path
from typing import Any

from winnow.core.errors import LifecycleError
from winnow.core.files import write_atomic

FORMAT = "winnow-cycle"
SCHEMA_VERSION = 1
STAGES = ("snapshot", "datasets", "fit", "gate", "write", "handoff")  # a cycle's stages, in order
CYCLE_RE = re.compile(r"^c[0-9]{8}T[0-9]{6}Z-[0-9a-f]{6}$")


def cycles_dir(home: str | Path) -> Path:
    """``<home>/lifecycle/cycles``: one record per cycle."""
    return Path(home) / "lifecycle" / "cycles"


def digest(obj: Any) -> str:
    """sha256 of the canonical JSON of ``obj`` (sorted keys): a stage's inputs / outputs hash."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def new_record(config_sha256: str, now: float | None = None) -> dict[str, Any]:
    """A fresh, running cycle record (not yet saved)."""
    t = time.time() if now is None else now
    cycle = f"c{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime(t))}-{secrets.token_hex(3)}"
    return {"format": FORMAT, "schema_version": SCHEMA_VERSION, "cycle": cycle, "started_at": int(t),
            "finished_at": None, "status": "running", "reason": None, "config_sha256": config_sha256,
            "stages": {}, "gate": None}


def save_record(home: str | Path, record: dict[str, Any]) -> Path:
    """Write ``record`` atomically to its file; returns the path."""
    d = cycles_dir(home)
    d.mkdir(parents=True, exist_ok=True)
    path = d / f"{record['cycle']}.json"
    write_atomic(path, json.dumps(record, indent=2, sort_keys=True))
    return path


def load_records(home: str | Path) -> list[dict[str, Any]]:
    """Every cycle record, oldest first. A file that is not a cycle record is an error naming it
    (records are written atomically, so a broken one was written by something else)."""
    d = cycles_dir(home)
    out: list[dict[str, Any]] = []
    if not d.is_dir():
        return out
    for p in sorted(d.glob("c*.json")):
        if not CYCLE_RE.match(p.stem):
            continue
        try:
            rec = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise LifecycleError(f"{p}: unreadable cycle record: {exc}") from None
        if not isinstance(rec, dict) or rec.get("format") != FORMAT:
            raise LifecycleError(f"{p}: not a cycle record (format {rec.get('format') if isinstance(rec, dict) else None!r})")
        if rec.get("schema_version") != SCHEMA_VERSION:
            raise LifecycleError(f"{p}: schema_version {rec.get('schema_version')!r} is not supported "
                                 f"(this winnow reads {SCHEMA_VERSION})")
        out.append(rec)
    return out


def last_done(records: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The newest cycle that completed every stage, or None."""
    done = [r for r in records if r["status"] == "done"]
    return done[-1] if done else None
