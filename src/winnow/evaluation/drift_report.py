"""``winnow drift report``: the ACTIVE bundle's reference profile against the store's most recent
window (winnow.evaluation.drift for the statistics, drift_profile for the profiles).

The live window is the last ``[drift] window_days`` before the newest stored event (+1 s), so a
report over an idle store still compares the latest traffic. A bundle written before profiles
existed has none: BundleError says so (train a new one).

``compare_live(config, store, version, ref, until=)`` is the one comparison behind the CLI, the
service's drift monitor (winnow.serving.drift_monitor: ``GET /v1/admin/drift``, ``/metrics``,
the dashboard's Drift page) and the autopilot; ``drift_report`` adds finding ACTIVE and the
newest event. ``format_html`` renders a report as one self-contained HTML page.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from winnow.bundle import active_version, bundles_dir, load_profile
from winnow.core.config import WinnowConfig
from winnow.core.errors import BundleError, DataError
from winnow.data.store import Store
from winnow.evaluation.drift import compare, reference_features
from winnow.evaluation.drift_features import feature_inputs, live_features
from winnow.evaluation.drift_profile import window_profile


def drift_report(config: WinnowConfig, store: Store, *, until: int | None = None) -> dict[str, Any]:
    """{"bundle", "reference" window, "live" window, "data" rows, "concept" rows, flags}.
    ``until``: the live window's end (exclusive); default the newest stored event + 1 s (which
    reads the whole log once: a caller that knows it, like the autopilot, passes it and reads only
    the window)."""
    version = active_version(config.home)
    if version is None:
        raise BundleError("no active bundle: train one (winnow train) before a drift report")
    ref = load_profile(bundles_dir(config.home) / version)
    if ref is None:
        raise BundleError(f"bundle {version} has no reference profile (written before drift profiles): "
                          "train a new bundle")
    if until is None:
        log = store.read_events()
        if len(log) == 0:
            raise DataError("no events in the store", source="store")
        until = int(np.asarray(log.timestamp).max()) + 1
    return compare_live(config, store, version, ref, until=until)


def compare_live(config: WinnowConfig, store: Store, version: str, ref: dict[str, Any], *,
                 until: int) -> dict[str, Any]:
    """Bundle ``version``'s reference profile ``ref`` against the store's last ``[drift]
    window_days`` before ``until`` (with the live ranker-feature profile of the slates ``version``
    served, winnow.evaluation.drift_features, when the reference has served-slate features: the
    ranker learned from served slates, or ``served_features``): {"bundle", "reference" / "live" {window, events}, "data" /
    "concept" rows, "notes", "data_drift" / "concept_drift" flags} (winnow.evaluation.drift)."""
    rk = ref.get("ranker") or {}
    edges = rk.get("calibration", {}).get("edges")
    since = int(until - config.drift.window_days * 86400)
    live = window_profile(store, config, since=since, until=until,
                          calibration=(version, edges) if edges is not None else None)
    if reference_features(rk, config.drift.min_served) is not None:  # else not comparable: compare says why
        inputs = feature_inputs(str(bundles_dir(config.home) / version))
        if inputs is not None:
            live["ranker_features"] = live_features(store, config, inputs, version=version, since=since, until=until)
    out = compare(ref, live, config.drift)
    return {"bundle": version, "reference": {"window": ref["window"], "events": ref["events"]},
            "live": {"window": live["window"], "events": live["events"],
                     "served_items": live.get("served_items", 0),
                     # what the ranker-feature rows were computed on (None: not computed)
                     "ranker_features": {k: v for k, v in live["ranker_features"].items() if k != "features"}
                     if "ranker_features" in live else None}, **out}


def format_report(rep: dict[str, Any]) -> str:
    """The report as text: one line per statistic, data drift and concept drift apart."""
    lines = [f"bundle {rep['bundle']}: reference window {rep['reference']['window']} "
             f"({rep['reference']['events']:,} events) vs live {rep['live']['window']} "
             f"({rep['live']['events']:,} events)"]
    for kind in ("data", "concept"):
        flag = rep[f"{kind}_drift"]
        lines.append(f"{kind} drift: {'YES' if flag else 'no'}")
        for r in rep[kind]:
            lines.append(f"  {r['name']:<18} {r['statistic']:<12} {r['value']:8.4f}  (threshold "
                         f"{r['threshold']})  {'DRIFT' if r['drifted'] else 'ok'}")
        if kind == "data" and any(r["name"].startswith("feature:") for r in rep[kind]):
            feats = [r for r in rep[kind] if r["name"].startswith("feature:")]
            lines.append(f"  ({len({r['name'] for r in feats})} ranker features compared, "
                         f"{len({r['name'] for r in feats if r['drifted']})} drifted)")
        if kind == "concept" and not rep["concept"]:
            lines.append(f"  {rep['concept_note']}")
    lines += [f"note: {n}" for n in rep.get("notes", [])]
    return "\n".join(lines)
