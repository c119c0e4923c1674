"""Typed configuration of ``[lifecycle]``: when ``winnow autopilot`` retrains, and the gate a
challenger bundle must pass before it is handed off (winnow.lifecycle; docs/LIFECYCLE.md).

Part of winnow.core.config (which re-exports everything here); split out only to keep files small.
The field defaults are the one source of default values; ``defaults.toml`` repeats them, commented.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from winnow.core.config_models import _Section


class GateConfig(_Section):
    """Champion (ACTIVE bundle) vs challenger on the same time-based holdout (winnow.lifecycle.gate).

    Value thresholds are absolute floors of the challenger's offline metrics@k on the holdout;
    change thresholds bound its relative drop against the champion on the same holdout:
    ``(champion - challenger) / champion <= max_relative_drop`` (skipped when the champion's value
    is 0 or there is no champion). Any failed check fails the gate; the challenger is then kept
    (bundle written, labelled with why) and never served."""

    k: int = Field(20, ge=1, le=1000)  # cut-off of NDCG@k / recall@k / coverage@k
    model: str = "als"  # the bundle's retrieval model whose top-k is measured (an `always` component)
    holdout_days: float = Field(7.0, gt=0)  # the most recent window of the cut; the challenger trains before it
    min_holdout_users: int = Field(20, ge=1)  # fewer evaluable users -> the gate fails ("cannot evaluate")
    max_users: int = Field(5000, ge=1)  # users scored on the holdout (seeded sample above this)
    min_ndcg: float = Field(0.01, ge=0, le=1)  # absolute floors: a broken model, not a weak one
    min_recall: float = Field(0.01, ge=0, le=1)
    min_coverage: float = Field(0.0, ge=0, le=1)
    max_relative_drop: float = Field(0.05, ge=0)  # per metric, vs the champion on the same holdout
    # holdout positives on items the user was SHOWN in the holdout window (the impression log): "exclude"
    # drops them and removes every shown item from both bundles' top-k (the served policy -- usually
    # the champion -- caused those clicks, so they score the champion on its own exposure); "include"
    # keeps them (the behaviour before stop 19). docs/LIFECYCLE.md, "The gate and exposure".
    shown_positives: Literal["exclude", "include"] = "exclude"
    ope_min_matches: int = Field(50, ge=1)  # logged rows the challenger would have shown alike, for SNIPS
    ope_bootstrap: int = Field(500, ge=0)  # bootstrap resamples of the SNIPS confidence interval
    seed: int = 0


class LifecycleConfig(_Section):
    """``winnow autopilot``: a cycle (snapshot -> datasets -> fit -> gate -> write -> handoff)
    every ``retrain_every_s`` seconds, or earlier when a trigger fires; ``after_gate`` says what
    happens to a challenger that passes the gate: "activate" (made ACTIVE now), "hold" (kept,
    labelled "passed", for a later hand-off) or "canary" (a canary rollout of it is started through
    winnow.rollout.control; deferred, not failed, while another rollout runs)."""

    retrain_every_s: float = Field(86_400.0, gt=0)  # schedule: one cycle a day
    min_new_events: int = Field(100_000, ge=1)  # trigger: events after the last cycle's cut
    min_new_items: int = Field(1_000, ge=1)  # trigger: catalog items the last cycle did not see
    poll_s: float = Field(60.0, gt=0)  # how often the long-running autopilot checks the triggers
    after_gate: Literal["activate", "hold", "canary"] = "activate"
    # after_gate = "canary": the rollout the handoff starts (winnow.rollout.control.start); None = [rollout]'s
    canary_plan: list[int] | None = None  # challenger % per step, increasing, ending at 100
    canary_step_s: float | None = Field(None, gt=0)  # a step lasts at least this long
    canary_min_exposed: int | None = Field(None, ge=1)  # challenger users exposed before a step may end
    # drift trigger: "data" / "concept" / "any" -- a cycle starts early when `winnow drift report`'s flag of
    # that kind is raised (ACTIVE bundle's profile vs the store's last [drift] window_days); "off" never
    drift_trigger: Literal["off", "data", "concept", "any"] = "off"
    drift_check_s: float = Field(600.0, gt=0)  # the drift report is computed at most this often
    drift_min_events: int = Field(1_000, ge=1)  # live-window events below this: too few to judge, no trigger
    # a failed (resumable) cycle: retried after retry_backoff_s x 2^(attempt-1), at most max_attempts runs
    max_attempts: int = Field(3, ge=1)
    retry_backoff_s: float = Field(300.0, ge=0)
    gate: GateConfig = GateConfig()

    @field_validator("canary_plan")
    @classmethod
    def _plan(cls, v: list[int] | None) -> list[int] | None:
        from winnow.core.config_rollout import check_plan
        from winnow.core.errors import RolloutError

        if v is not None:
            try:
                check_plan(v)
            except RolloutError as exc:
                raise ValueError(f"canary_plan: {exc}") from None
        return v


class DriftConfig(_Section):
    """Drift monitoring (winnow.evaluation.drift; ``winnow drift report``): each bundle keeps a
    reference profile of the last ``window_days`` of its training data, compared with the store's
    last ``window_days``. Thresholds (a statistic above its threshold is drift):
    ``psi`` 0.2 -- the usual reading of the population stability index is < 0.1 stable,
    0.1-0.25 moderate, > 0.25 major; 0.2 flags a shift before it is major. ``js`` 0.1 (Jensen-
    Shannon distance, base 2) and ``wasserstein`` 0.1 (W1 / the reference's interquartile range)
    follow the peers' 0.1 for distances. ``ks`` 0.1 is the KS *statistic* (largest CDF gap), not a
    p-value: at production volumes every p is below 0.05 for shifts nobody cares about, the
    statistic is an effect size. ``served_drop`` 0.05: the share of positives on items the service
    had shown that user falling by 5 points (absolute) is concept drift. ``calibration_gap`` 0.3:
    the ranker's observed click rate on the slates it served differing from the rate its
    training lists predict for those scores by more than 30% (relative) is concept drift; below
    ``min_served`` served items the rate is too noisy to compare (a binomial rate p over n items
    has a relative standard error sqrt((1-p)/(n p)): 0.14 at p = 0.1, n = 500).
    ``new_item_days``: an event on an item created at most this long before counts as new.

    Ranker features (data drift, ``feature:<name>`` rows): the monitor recomputes the served
    ranker's features point-in-time for at most ``feature_slates`` of the slates the bundle served
    in the window (winnow.evaluation.drift_features) and compares each feature's distribution
    with the bundle's reference (normed Wasserstein, KS; ``min_served`` rows at least).
    Candidate sets (concept drift, ``candidate_recall``): a ``candidate_sample`` share of requests
    (0 = off, the default; 1 = every request) logs its merged retrieval candidates with the
    impression; the share of later positives those sets contained falling by more than
    ``served_drop`` is concept drift, compared when both windows hold ``min_positives`` positives
    of users with a logged set (a share p over n positives has a standard error sqrt(p (1-p) / n),
    at most 0.025 at n = 400: the 0.05 threshold is two of them).

    The live monitor (winnow.serving.drift_monitor) recomputes the live window (the last
    ``window_days`` before now: the same length as the reference's, so per-window counts compare)
    every ``refresh_s`` seconds in a process that answers no requests, once per home, and writes
    ``<home>/drift/live.json`` (with the last ``history`` results), which the serving workers only
    read. ``monitor``: "process" -- ``winnow serve`` starts and supervises that process (at nice
    ``monitor_nice``, in the SCHED_IDLE class with ``monitor_idle``); "external" -- the workers read the file, the process is run separately
    (``winnow drift monitor``, e.g. beside replicas); "off" -- no monitoring (the admin routes
    answer 404). The old booleans still load: true = "process", false = "off". A comparison reads
    the whole window, so its cost grows with the traffic (~24 s of CPU at 10^6 events and 2.5 x
    10^6 shown items): ``max_duty`` bounds the monitor's share of a core -- the next scheduled
    comparison waits at least the last one's CPU time / ``max_duty`` (so ``refresh_s`` stretches
    when comparisons get expensive, and the report says so); a refresh asked for explicitly
    (``POST /v1/admin/drift/refresh``) is not delayed. Its memory is bounded by
    ``served_max_events``: above that many events in a window, the served-slate reads take a
    deterministic user sample (winnow.data.user_sample) of about ``served_max_events / events``
    of the users, every row of each, so the per-user and per-positive shares it compares stay
    unbiased (the events' own profile, columnar, is read whole); and above
    ``served_max_impressions`` logged slates in it, of about ``served_max_impressions /
    impressions`` of them (the smaller of the two samples): the slates a server logs grow with
    the requests it answers, not with the events it is sent."""

    window_days: float = Field(7.0, gt=0)
    top_items: int = Field(1000, ge=1)  # items kept by name in the reference popularity (+ "other")
    psi: float = Field(0.2, gt=0)
    js: float = Field(0.1, gt=0, le=1)
    wasserstein: float = Field(0.1, gt=0)
    ks: float = Field(0.1, gt=0, le=1)
    served_drop: float = Field(0.05, gt=0, le=1)
    calibration_gap: float = Field(0.3, gt=0)
    min_served: int = Field(500, ge=1)
    new_item_days: float = Field(7.0, gt=0)
    feature_slates: int = Field(2000, ge=1)  # served slates the live ranker-feature profile recomputes
    candidate_sample: float = Field(0.0, ge=0, le=1)  # share of requests that log their candidate set
    min_positives: int = Field(400, ge=1)  # candidate_recall compared from this many positives per window
    monitor: Literal["process", "external", "off"] = "process"
    monitor_nice: int = Field(10, ge=0, le=19)  # niceness of the monitor process `winnow serve` starts
    monitor_idle: bool = True  # ... and in the SCHED_IDLE class (Linux): CPU only when the workers leave it idle
    refresh_s: float = Field(300.0, gt=0)
    max_duty: float = Field(0.1, gt=0, le=1)  # the monitor's share of one core, at most (see above)
    # above this many events in a window the served-slate reads take a user sample (about
    # served_max_events / events of the users, all rows of each): bounded memory and CPU
    served_max_events: int = Field(500_000, ge=1)
    # ... and above this many logged slates (impressions) in it, whatever its events (a server
    # logs a slate per request, clicked or not): about served_max_impressions / impressions
    served_max_impressions: int = Field(50_000, ge=1)
    history: int = Field(48, ge=1, le=10_000)

    @field_validator("monitor", mode="before")
    @classmethod
    def _monitor_bool(cls, v: object) -> object:
        """The boolean this field was before ("process" | "external" | "off"): true -> "process",
        false -> "off" (also as the strings an environment variable carries)."""
        if isinstance(v, bool):
            return "process" if v else "off"
        if isinstance(v, str) and v.strip().lower() in ("true", "false", "1", "0", "yes", "no", "on"):
            return "process" if v.strip().lower() in ("true", "1", "yes", "on") else "off"
        return v
