"""The live ranker-feature profile: the served ranker's features on a sample of the slates it
served in a window, recomputed point-in-time from the store, for drift monitoring
(winnow.evaluation.drift compares them, feature by feature, with the bundle's reference).

Where the features come from, and why. The request path computes every candidate's features
from live state but keeps none of them (logging ~60 floats per candidate would cost every
request). The monitor -- a process that answers no requests -- recomputes them instead, with
the training path's own code: ``features.offline_features`` (point-in-time: each row sees only
events strictly before its slate's time) over the bundle's feature spec, feature catalog and id
maps (``bundle.load_feature_inputs``), the slates read and labelled by the same code as the
ranker's impression training lists (``features.impression_lists``: source scores as logged with
the slate, device from the logged context, labels by the feedback attribution window). So the
live rows are built exactly as the reference's training rows were, and a difference between the
two is the world moving, not two implementations disagreeing.

What is sampled, and the bound: at most ``[drift] feature_slates`` of the slates the bundle
``version`` served in [since, until) (``Store.sample_impressions``: evenly spread over the
window, the same log gives the same sample); of those, as in the ranker's training lists, the
slates with at least one positive (a click or purchase attributed within ``[feedback]
attribution_window_s`` before ``until``) and their items the bundle knows. The events the
features read are every stored event before ``until`` of users and items the bundle knows,
weighted as training weighs them (weight <= 0 left out) -- the same events the ranker's online
state folds in. Cost: one read of the event log plus ``offline_features`` over at most
``feature_slates`` x slate length rows (O(E log E) in the events E), once per ``refresh_s`` in the
monitor.

``live_features(store, config, inputs, version=, since=, until=)`` -> {"version", "slates"
(sampled), "labelled_slates", "rows", "features": {name: ``QUANTILES`` quantiles, NaN left out}}.
``served_reference``: the same at training time over the reference window's slates, for a ranker
trained on history lists (its training rows are candidate lists, another population).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np

from winnow.bundle import FeatureInputs, load_feature_inputs
from winnow.core.config import WinnowConfig
from winnow.data.interactions import Interactions
from winnow.data.store import EventLog, Store
from winnow.data.training_data import event_weights
from winnow.evaluation.drift_profile import feature_quantiles
from winnow.features import offline_features
from winnow.features.impression_lists import impression_lists


@lru_cache(maxsize=2)
def feature_inputs(bundle_dir: str) -> FeatureInputs | None:
    """``bundle.load_feature_inputs``, cached by path: a bundle directory never changes once
    written, and the monitor compares the same ACTIVE bundle every ``refresh_s``."""
    return load_feature_inputs(bundle_dir)


def known_events(log: EventLog, inputs: FeatureInputs, config: WinnowConfig) -> Interactions:
    """The events of ``log`` whose user and item the bundle knows, in its index space, weighted
    by ``[events]`` (weight <= 0 left out): what the ranker's features count."""
    u = inputs.user_ids.encode(log.user_ids, missing=-1)[log.user] if len(log) else np.zeros(0, np.int32)
    i = inputs.item_ids.encode(log.item_ids, missing=-1)[log.item] if len(log) else np.zeros(0, np.int32)
    w = event_weights(np.asarray(log.event_type, np.int64), np.asarray(log.value, np.float64),
                      list(log.event_types), config.events) if len(log) else np.zeros(0, np.float32)
    keep = (w > 0) & (u >= 0) & (i >= 0)
    return Interactions.from_arrays(u[keep], i[keep], weight=w[keep], timestamp=np.asarray(log.timestamp)[keep],
                                    n_users=len(inputs.user_ids), n_items=len(inputs.item_ids))


def live_features(store: Store, config: WinnowConfig, inputs: FeatureInputs, *, version: str | None,
                  since: int, until: int) -> dict[str, Any]:
    """The ranker features of a sample of the slates ``version`` (None: any bundle) served in
    [since, until) (module docstring)."""
    fb, rc = config.feedback, config.ranker
    imps = store.sample_impressions(since=since, until=until, model_version=version,
                                    limit=config.drift.feature_slates)
    types = sorted(set(fb.click_events) | set(rc.purchase_events))
    events = store.read_feedback_events(event_types=types, since=since)
    lists = impression_lists(imps, events[events["timestamp"] < until], user_ids=inputs.user_ids,
                             item_ids=inputs.item_ids, click_types=fb.click_events,
                             purchase_types=rc.purchase_events, window_s=fb.attribution_window_s)
    out: dict[str, Any] = {"version": version, "slates": len(imps), "labelled_slates": len(lists),
                           "rows": int(len(lists.row_list)), "features": {}}
    if len(lists.row_list):
        x = offline_features(known_events(store.read_events(until=until), inputs, config), inputs.catalog,
                             inputs.spec, lists.feature_lists(inputs.spec))
        out["features"] = feature_quantiles(inputs.spec.names, x)
    return out


def served_reference(store: Store, config: WinnowConfig, inputs: FeatureInputs, *, until: int) -> dict[str, Any] | None:
    """For a ranker trained on lists carved from history (whose training rows are candidate
    lists, not served slates): the same profile over the slates ANY bundle served in the last
    ``[drift] window_days`` before ``until`` (the training cut), computed with the new ranker's
    feature inputs -> ``live_features``' dict plus "window"; None when that window has no
    labelled slate. Stored as the reference profile's ``ranker.served_features``; the live
    comparison then has a served-slate population on both sides."""
    since = int(until - config.drift.window_days * 86400)
    prof = live_features(store, config, inputs, version=None, since=since, until=until)
    return {**prof, "window": [since, int(until)]} if prof["rows"] else None
