"""The gate's off-policy estimate: the challenger's click rate per logged slate, by SNIPS
(winnow.evaluation.ope) over the impression log of the holdout window.

Contract: rows are the items the service showed in [holdout_start, cut) (``Store.
impression_outcomes``), reward 1 when a ``[feedback] click_events`` event followed with the same
request id. The challenger is deterministic: its target probability for a row is 1 when its
top-k for that user (the same exclusions as the offline holdout) has the shown item at the shown
position, else 0; the logging probability is the logged propensity. With fewer than
``[lifecycle.gate] ope_min_matches`` matching rows the log does not support an estimate and the
result says "not enough log" with the counts; otherwise it gives the SNIPS value, its percentile
bootstrap CI, the effective sample size and the logged policy's own click rate per slate.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from winnow.bundle import Bundle
from winnow.core.config import WinnowConfig
from winnow.data.store import Store
from winnow.evaluation.ope import LoggedSlates, estimate
from winnow.lifecycle.datasets import CycleData
from winnow.lifecycle.scoring import bundle_topk


def challenger_snips(store: Store, bundle: Bundle, data: CycleData, config: WinnowConfig) -> dict[str, Any]:
    """SNIPS estimate of ``bundle``'s policy on the holdout's impression log (module docstring)."""
    gate = config.lifecycle.gate
    rows = store.impression_outcomes(since=data.holdout_start)
    if len(rows):
        rows = rows[rows["timestamp"].astype(np.int64) < data.cut]
    if len(rows) == 0:
        return {"status": "not enough log", "why": "no impressions in the holdout window", "rows": 0, "matches": 0}
    ds = data.ds
    user = ds.user_ids.encode(rows["user_id"].astype(str).tolist(), missing=-1).astype(np.int64)
    item = ds.item_ids.encode(rows["item_id"].astype(str).tolist(), missing=-1).astype(np.int64)
    pos = rows["position"].to_numpy(np.int64)
    users = np.unique(user[user >= 0])
    target = np.zeros(len(rows))
    if len(users):
        recs = bundle_topk(bundle, gate.model, data, users, int(pos.max()) + 1, exclude_shown=False)
        row_of = np.searchsorted(users, np.maximum(user, 0))
        ok = (user >= 0) & (item >= 0)
        target[ok] = (recs[row_of[ok], pos[ok]] == item[ok]).astype(np.float64)
    matches = int((target > 0).sum())
    clicks = set(config.feedback.click_events)
    reward = np.array([float(any(e in clicks for e in ev)) for ev in rows["events"]])
    _, unit = np.unique(rows["request_id"].astype(str).to_numpy(), return_inverse=True)
    n_units = int(unit.max()) + 1
    base = {"rows": len(rows), "slates": n_units, "matches": matches,
            "logged_value": float(reward.sum() / n_units)}
    if matches < gate.ope_min_matches:
        return {"status": "not enough log", "why": f"{matches} logged rows show what the challenger would "
                f"have shown there, fewer than ope_min_matches = {gate.ope_min_matches}", **base}
    prop = rows["propensity"].astype(float).fillna(1.0).to_numpy(np.float64)
    log = LoggedSlates(unit=unit, position=pos, reward=reward, pscore=prop, target=target)
    est = estimate(log, ("snips",), n_bootstrap=gate.ope_bootstrap, seed=gate.seed)[0]
    return {"status": "estimated", "estimator": "snips", "value": est.value,
            "ci": [est.ci_low, est.ci_high], "ess": est.ess, **base}
