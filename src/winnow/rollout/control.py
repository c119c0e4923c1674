"""Starting, moving and ending rollouts: the one implementation behind the CLI and the admin API.

Every function validates first and changes nothing when it refuses (RolloutError with the HTTP
status the admin API answers). State lives in the store (winnow.data.rollouts); servers follow
it (winnow.serving.rollout_follower). ``transition`` is the only writer of a running rollout's
state after its start: a compare-and-set on the record's revision, so two workers or replicas
deciding at the same moment cannot both apply; promotion then makes the challenger ACTIVE
(``reconcile`` finishes a promotion a crash interrupted: the store's record is the truth).
"""

from __future__ import annotations

import math
import secrets
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from winnow import bundle as bundles
from winnow.core.config import WinnowConfig
from winnow.core.config_rollout import check_plan
from winnow.core.errors import BundleError, RolloutError, StoreError, UnknownIdError
from winnow.data.rollouts import Rollout, RolloutDecision, clean
from winnow.data.store import Store

MODES = ("shadow", "canary")
_FINAL = {"promote": "promoted", "roll_back": "rolled_back", "halt": "halted", "abort": "aborted"}


def parse_duration(text: str | float | int) -> float:
    """"90s" / "30m" / "2h" / a bare number of minutes -> seconds; RolloutError (422) otherwise."""
    raw = str(text).strip().lower()
    unit = {"s": 1.0, "m": 60.0, "h": 3600.0}.get(raw[-1:], None)
    number = raw[:-1] if unit is not None else raw
    try:
        value = float(number) * (unit if unit is not None else 60.0)
    except ValueError:
        raise RolloutError(f"step duration {text!r}: expected e.g. 90s, 30m, 2h", status=422) from None
    if not (value > 0 and math.isfinite(value)):  # "inf" / "nan" parse as floats: a step that never ends
        raise RolloutError(f"step duration {text!r} must be positive and finite", status=422)
    return value


def parse_plan(text: str) -> tuple[int, ...]:
    """"1,5,25,50,100" -> (1, 5, 25, 50, 100), checked (core.config_rollout.check_plan)."""
    try:
        steps = [int(p) for p in str(text).split(",") if p.strip()]
    except ValueError:
        raise RolloutError(f"plan {text!r}: expected comma-separated whole percents, e.g. 1,5,25,50,100",
                           status=422) from None
    return check_plan(steps)


def _check_challenger(home: Path, version: str) -> str | None:
    """Verify the challenger (404 unknown, 409 corrupt); return the ACTIVE version (the champion)."""
    try:
        path = bundles.bundle_path(home, version)
        bundles.verify_bundle(path)
    except UnknownIdError:
        raise RolloutError(f"unknown bundle {version!r} (see `winnow bundles list`); nothing was changed",
                           status=404) from None
    except BundleError as exc:
        raise RolloutError(f"bundle {version!r} refused: {exc}; nothing was changed", status=409) from None
    champion = bundles.active_version(home)
    if champion is None:
        raise RolloutError("no active bundle to compare against: activate one first; nothing was changed")
    if champion == version:
        raise RolloutError(f"bundle {version!r} is already the active one; nothing was changed")
    return champion


def start(store: Store, config: WinnowConfig, *, challenger: str, mode: str, sample: float | None = None,
          plan: tuple[int, ...] | None = None, step_s: float | None = None, min_exposed: int | None = None,
          by: str = "operator", now: float | None = None) -> Rollout:
    """Validate and store a new shadow or canary rollout of ``challenger`` against the ACTIVE
    bundle. The rules (``[rollout]`` thresholds) are copied into the record."""
    if mode not in MODES:
        raise RolloutError(f"unknown rollout mode {mode!r}: choose shadow or canary", status=422)
    rc = config.rollout
    sample = rc.sample if sample is None else float(sample)
    if not 0.0 < sample <= 1.0:
        raise RolloutError(f"sample {sample} must be in (0, 1]", status=422)
    steps = check_plan(rc.plan if plan is None else plan) if mode == "canary" else ()
    step_s = rc.step_s if step_s is None else float(step_s)
    if not step_s > 0:
        raise RolloutError(f"step duration {step_s} s must be positive", status=422)
    min_exposed = rc.min_exposed if min_exposed is None else int(min_exposed)
    if min_exposed < 1:
        raise RolloutError(f"min_exposed {min_exposed} must be at least 1", status=422)
    if rc.max_step_s and rc.max_step_s < step_s:
        raise RolloutError(f"[rollout] max_step_s {rc.max_step_s} s is shorter than the step duration {step_s} s: "
                           "no step could end; raise it (or 0 for no limit)", status=422)
    champion = _check_challenger(config.home, challenger)
    t = int(time.time() if now is None else now)
    params = {"sample": sample, "step_s": step_s, "min_exposed": min_exposed, "salt": secrets.token_hex(8),
              **rc.model_dump(include={"metric", "margin", "alpha", "tau", "srm_p", "srm_min_users", "check_s",
                                         "max_build_failures", "max_step_s"}),
              "guardrails": rc.guardrails.model_dump()}
    first = RolloutDecision(t, 0, "operator", "start", {"by": by, "mode": mode, "plan": list(steps)})
    return store.start_rollout(Rollout(id=0, state=mode, revision=0, started=t, challenger=challenger,
                                       champion=champion, mode=mode, plan=steps, step=0, step_started=t,
                                       params=params, decisions=(first,)))


def running(store: Store) -> Rollout:
    """The running rollout; RolloutError (404) when none runs."""
    r = store.rollout()
    if r is None or not r.running:
        raise RolloutError("no rollout is running" + (f" (the last, {r.id}, ended {r.state})" if r else ""),
                           status=404)
    return r


def refuse_if_running(store: Store, what: str) -> None:
    """RolloutError (409) when a rollout runs: moving ACTIVE by hand would change the champion
    the running rollout compares against (promote or abort it first)."""
    r = store.rollout()
    if r is not None and r.running:
        raise RolloutError(f"{what}: rollout {r.id} ({r.state}, challenger {r.challenger}) is running; "
                           "promote or abort it first (winnow rollout promote|abort)", status=409)


def transition(store: Store, home: Path, r: Rollout, *, action: str, rule: str,
               evidence: dict[str, Any] | None = None, now: float | None = None) -> Rollout | None:
    """Apply one decision to the running rollout ``r`` as read (compare-and-set on its revision):
    ``next_step`` (the step reaching 100% promotes), ``promote`` (state promoted, then the
    challenger becomes ACTIVE), ``roll_back`` / ``halt`` / ``abort`` (challenger share -> 0).
    Returns the new record, or None when another worker changed it first (nothing written)."""
    t = int(time.time() if now is None else now)
    evidence = clean(evidence or {})
    if action == "next_step" and r.step + 1 < len(r.plan) and r.plan[r.step + 1] < 100:
        changes: dict[str, Any] = {"step": r.step + 1, "step_started": t}
    elif action in ("next_step", "promote"):
        action = "promote"
        changes = {"state": "promoted", "ended": t, "step": max(len(r.plan) - 1, 0), "activated": False}
    elif action in _FINAL:
        changes = {"state": _FINAL[action], "ended": t}
    else:
        raise RolloutError(f"unknown rollout action {action!r}", status=422)
    if action == "promote":  # the challenger must still verify before it becomes ACTIVE
        _check_challenger(home, r.challenger)
    new = store.update_rollout(r.id, revision=r.revision, changes=changes,
                               decision=RolloutDecision(t, r.step, rule, action, evidence))
    if new is not None and action == "promote":
        # a crash from here until the mark below is repaired by ``reconcile`` (every server runs it)
        bundles.activate(home, r.challenger, verify=False)  # verified just above
        try:
            new = store.update_rollout(new.id, revision=new.revision, changes={"activated": True}) or new
        except StoreError:  # ACTIVE is written; ``reconcile`` confirms the mark later
            pass
    return new


def reconcile(store: Store, home: Path, *, now: float | None = None) -> Rollout | None:
    """Make ACTIVE follow the store after a crash during a promotion. The store's record is the
    truth: a promotion writes ``promoted`` (with ``activated`` False), then ACTIVE, then
    ``activated`` True. For the latest rollout still ``promoted`` with ``activated`` False:

    - ACTIVE still on the champion (the crash came before the ACTIVE write): the challenger is
      verified and made ACTIVE, decision ``activate`` / ``promotion_recovered``;
    - ACTIVE already the challenger (the crash came after it): only the mark,
      ``promotion_confirmed``;
    - ACTIVE on a third bundle (moved by hand since): left there, ``promotion_superseded``;
    - the challenger no longer verifies: ACTIVE stays, ``promotion_refused`` with the error.

    Every branch ends with ``activated`` True (compare-and-set: of several servers reconciling
    at once one records the decision; writing the same ACTIVE twice is harmless). Returns the
    updated record, None when there was nothing to do (or another server did it first).
    Records older than the field (``activated`` None) are never touched."""
    r = store.rollout()
    if r is None or r.state != "promoted" or r.activated is not False:
        return None
    active = bundles.active_version(home)
    evidence: dict[str, Any] = {"active_before": active, "challenger": r.challenger, "champion": r.champion}
    if active == r.challenger:
        rule = "promotion_confirmed"
    elif active != r.champion:
        rule = "promotion_superseded"
    else:
        try:
            bundles.activate(home, r.challenger)  # verifies every checksum first
            rule = "promotion_recovered"
        except (BundleError, UnknownIdError) as exc:
            rule, evidence["error"] = "promotion_refused", str(exc)
    t = int(time.time() if now is None else now)
    return store.update_rollout(r.id, revision=r.revision, changes={"activated": True},
                                decision=RolloutDecision(t, r.step, rule, "activate", clean(evidence)))


def operator(store: Store, home: Path, action: str, *, by: str = "operator") -> Rollout:
    """``promote`` or ``abort`` the running rollout by hand (404 when none runs; 409 when it
    changed under us -- retry)."""
    r = running(store)
    new = transition(store, home, r, action=action, rule="operator", evidence={"by": by})
    if new is None:
        raise RolloutError(f"rollout {r.id} changed while {action} was applied; look at its status and retry")
    return new


def status(store: Store, rollout_id: int | None = None) -> Rollout:
    """The running rollout, else the latest (or ``rollout_id``); 404 when there is none."""
    r = store.rollout(rollout_id)
    if r is None:
        raise RolloutError("no rollout yet" if rollout_id is None else f"no rollout {rollout_id}", status=404)
    return replace(r)
