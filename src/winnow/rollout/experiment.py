"""A canary as an experiment for ``winnow ab report rollout-<id>`` (winnow.evaluation.ab).

The service logs each canary request's arm under ``context.experiments["rollout-<id>"]`` (and
``context.rollout``), so the A/B report reads a rollout like any ``[[experiments]]`` entry, with
three differences this module settles:

- the experiment is not in the config: it is built from the rollout record (name, salt,
  variants ``champion`` then ``challenger``, control ``champion``, window [started, ended]);
- only impressions that logged the arm count (``experiment_frame(logged_only=True)``): a
  request answered before this process had built the challenger logged none;
- the challenger's share grew step by step, so the split the SRM check expects is not one
  step's share: a user's arm is the one of their FIRST rollout impression (intention to treat;
  a champion user moved to the challenger by a later step stays a champion user), which is the
  challenger with probability = the share of the step in effect then. The expected challenger
  share is the mean of that over the exposed users (``expected_share``).
"""

from __future__ import annotations

import bisect
from datetime import datetime, timezone

from winnow.core.config import ExperimentConfig, VariantConfig
from winnow.core.errors import RolloutError
from winnow.data.rollouts import Rollout
from winnow.data.store import Store
from winnow.rollout.assign import CHALLENGER, CHAMPION, experiment_name

PREFIX = "rollout-"


def rollout_id(name: str) -> int | None:
    """The id in ``rollout-<id>``, else None (a configured experiment's name)."""
    if not name.startswith(PREFIX) or not name[len(PREFIX):].isdigit():
        return None
    return int(name[len(PREFIX):])


def share_at(r: Rollout, ts: float) -> float:
    """The challenger's share (0..1) in effect at unix time ``ts``: plan step 0 from the start,
    the next one from each ``next_step`` decision."""
    changes = [d.at for d in r.decisions if d.action == "next_step"]
    step = bisect.bisect_right(changes, ts)
    return r.plan[min(step, len(r.plan) - 1)] / 100.0 if r.plan else 0.0


def expected_share(store: Store, r: Rollout) -> tuple[float, int]:
    """(expected challenger share of the exposed users, number of them): the mean over users of
    the share in effect at their first impression that logged an arm of rollout ``r``."""
    first: dict[str, float] = {}
    for imp in store.read_impressions(since=r.started):
        ro = (imp.get("context") or {}).get("rollout") or {}
        if ro.get("id") == r.id and ro.get("arm") in (CHAMPION, CHALLENGER):
            first.setdefault(str(imp["user_id"]), float(imp["timestamp"]))
    if not first:
        return 0.0, 0
    return sum(share_at(r, ts) for ts in first.values()) / len(first), len(first)


def rollout_experiment(store: Store, name: str) -> ExperimentConfig:
    """``rollout-<id>`` as an ExperimentConfig (see module docstring); RolloutError (404) for an
    unknown rollout, (409) for a shadow (it assigns no user) or a canary that exposed nobody."""
    rid = rollout_id(name)
    r = store.rollout(rid) if rid is not None else None
    if r is None:
        raise RolloutError(f"no rollout {name[len(PREFIX):]!r} (see `winnow rollout status`)", status=404)
    if r.mode != "canary":
        raise RolloutError(f"rollout {r.id} is a {r.mode}: it assigns no user to an arm, so there is no "
                           "A/B report (`winnow rollout status` shows its comparison)")
    share, users = expected_share(store, r)
    if users == 0:
        raise RolloutError(f"rollout {r.id} logged no request with an arm: nothing to report")
    end = datetime.fromtimestamp(r.ended + 1, timezone.utc) if r.ended is not None else None
    return ExperimentConfig(name=experiment_name(r.id), salt=str(r.params.get("salt", "")), control=CHAMPION,
                            variants=[VariantConfig(name=CHAMPION, traffic=1.0 - share),
                                      VariantConfig(name=CHALLENGER, traffic=share)],
                            start=datetime.fromtimestamp(r.started, timezone.utc), end=end)
