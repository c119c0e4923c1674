"""Stage 3, fit: the challenger bundle, by ``winnow train``'s job (winnow.training.job.train) on
the snapshot's events before the holdout start, written atomically and never activated.

Contract: the bundle's manifest carries ``lifecycle`` = {cycle, role "challenger", snapshot
events_sha256} and ``data.cut`` = the holdout start. A bundle already labelled with this cycle
and snapshot (written by a run that stopped before recording the stage) is reused, not trained
again. With ``[training] warm_start = "active"`` ALS and the two-tower continue from the champion
(the ACTIVE bundle) unless it trained on events past the holdout start (winnow.bundle.warm);
``warm_from`` names the bundle used (None: cold, the manifest's ``warm_start`` says why). A run stopped inside training leaves no bundle (write_bundle renames a complete
directory into place, or nothing).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from winnow.bundle import BundleInfo, list_bundles
from winnow.core.config import WinnowConfig
from winnow.data.store import Store
from winnow.training.job import train


def _existing(config: WinnowConfig, label: dict[str, Any]) -> BundleInfo | None:
    for info in list_bundles(config.home):
        lc = info.manifest.get("lifecycle") or {}
        if lc.get("cycle") == label["cycle"] and lc.get("snapshot") == label["snapshot"]:
            return info
    return None


def fit_challenger(config: WinnowConfig, store: Store, *, cycle: str, snapshot_sha256: str, until: int,
                   say: Callable[[str], None]) -> dict[str, Any]:
    """The fit stage's outputs: the challenger's version, data range and training stage timings."""
    label = {"cycle": cycle, "role": "challenger", "snapshot": snapshot_sha256}
    info = _existing(config, label)
    if info is not None:
        say(f"      bundle {info.version} of this cycle is already written: reused")
        reused = True
    else:
        info = train(config, store, evaluate_models=False, activate_bundle=False, until=until, label=label,
                     progress=say)
        reused = False
    m = info.manifest
    return {"version": info.version, "reused": reused, "data": m.get("data"),
            "training_stages": m.get("timings_s"), "warm_from": (m.get("warm_start") or {}).get("source")}
