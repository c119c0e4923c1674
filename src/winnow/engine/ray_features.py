"""The ranker's point-in-time features on Ray Data, over partitioned Parquet exports.

``ray_offline_features(events, catalog, spec, lists, engine=...)`` returns exactly what
``winnow.features.offline.offline_features(events, catalog, spec, lists)`` returns (same
function, same inputs per list; the engine test checks equality):

1. the event log and the candidate lists are exported to Parquet, partitioned by user hash
   (``winnow.engine.parquet_export``); a list lives in its user's partition;
2. a Ray Data job maps over groups of list partitions, one group per worker; each actor reads
   the whole event export once (the item popularity, peer-group and global counts as of t need
   everyone's events, not only the partition's users), then its group's lists, and calls
   ``offline_features`` once (every call sorts the event log: O(E log E) per worker);
3. the driver puts each partition's rows back in global row order.

So the work over candidate rows scales with workers; every task still holds the event arrays
(user, item, timestamp: 16 bytes an event), which bounds one task at ~10^9 events per 16 GB.

``RayEngine.offline_features`` is this function; the ranker's funnel (winnow.training.stacked)
is given it in place of ``offline_features`` (dependency injection: the engine never imports
training).
"""

from __future__ import annotations

import shutil
import uuid
from typing import Any

import numpy as np

from winnow.data.interactions import Interactions
from winnow.engine.parquet_export import (
    export_events,
    export_lists,
    read_events,
    read_list_partitions,
)
from winnow.engine.ray_session import RaySession
from winnow.features.catalog import FeatureCatalog
from winnow.features.offline import Lists, offline_features
from winnow.features.spec import FeatureSpec


class _PartitionFeatures:
    """Ray Data actor: a group of list partitions -> {"row": int64 [n], "x": float32 [n, F]}.
    Reads the event export once (constructor); one ``offline_features`` call per group."""

    def __init__(self, export_dir: str, sources: list[str], groups: list[list[int]], shared: list[Any]) -> None:
        import ray

        self.export_dir, self.sources, self.groups = export_dir, sources, groups
        sizes, self.catalog, self.spec = ray.get(shared[0])
        self.events = read_events(export_dir, n_users=sizes[0], n_items=sizes[1])

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        rows, xs = [], []
        for g in batch["group"].tolist():
            row, lists = read_list_partitions(self.export_dir, self.groups[int(g)], self.sources)
            rows.append(row)
            xs.append(offline_features(self.events, self.catalog, self.spec, lists))
        return {"row": np.concatenate(rows), "x": np.vstack(xs)}


def ray_offline_features(events: Interactions, catalog: FeatureCatalog, spec: FeatureSpec,
                         lists: Lists, *, engine: RaySession) -> np.ndarray:
    """float32 [n_rows, len(spec.names)], equal to ``offline_features`` (module docstring)."""
    import ray

    n_rows = len(lists.row_list)
    if n_rows == 0:
        return offline_features(events, catalog, spec, lists)
    run = engine.workdir / f"features-{uuid.uuid4().hex[:8]}"
    try:
        parts_n = engine.cfg.partitions
        export_events(events, run, partitions=parts_n)
        parts = export_lists(lists, list(spec.sources), run, partitions=parts_n)
        shared = ray.put(((events.n_users, events.n_items), catalog, spec))
        # one group of partitions per worker: each offline_features call sorts the whole event
        # log once (O(E log E)), so more calls than workers would repeat that work
        n_groups = min(engine.num_workers, len(parts))
        groups = [parts[g::n_groups] for g in range(n_groups)]
        inputs = ray.data.from_items([{"group": g} for g in range(n_groups)], override_num_blocks=n_groups)
        ds = inputs.map_batches(_PartitionFeatures, batch_size=1, batch_format="numpy",
                            fn_constructor_kwargs={"export_dir": str(run), "sources": list(spec.sources),
                                                   "groups": groups, "shared": [shared]},
                            compute=ray.data.ActorPoolStrategy(size=n_groups), num_cpus=1)
        out = np.full((n_rows, len(spec.names)), np.nan, np.float32)
        seen = np.zeros(n_rows, bool)
        for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
            out[batch["row"]] = batch["x"]
            seen[batch["row"]] = True
        if not seen.all():
            raise RuntimeError(f"ray feature job returned {int(seen.sum())} of {n_rows} rows")
        return out
    finally:
        shutil.rmtree(run, ignore_errors=True)
