"""Partitioned Parquet exports of the event log and of ranker candidate lists.

Layout under a directory ``d`` (Parquet, zstd, one file per partition, internal dense indices):

- ``d/events/part=<k>/events.parquet``: columns user int32, item int32, timestamp int64,
  weight float32 -- the events of the users with ``user_partition(user) == k``, sorted by time.
- ``d/lists/part=<k>/lists.parquet``: one row per candidate list: list int64 (global list
  index), user int64, t int64 (as-of time, unix s), device float64 (NaN unknown).
- ``d/lists/part=<k>/rows.parquet``: one row per (list, item) row: row int64 (global row
  index), list int64, item int64, and per source ``score__<src>`` / ``rank__<src>`` float64.

A list lives in its user's partition, so every partition holds whole lists: per-list feature
normalisation gives the same values whether computed over all lists or one partition.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from winnow.data.interactions import Interactions
from winnow.features.offline import Lists

_MIX = np.uint64(0x9E3779B97F4A7C15)


def user_partition(user: np.ndarray, partitions: int) -> np.ndarray:
    """int64 [n] partition of each user index: a multiplicative hash, so consecutive user ids
    (often of similar age and activity) spread over partitions."""
    if partitions < 1:
        raise ValueError(f"partitions must be >= 1, got {partitions}")
    h = (np.asarray(user, np.uint64) * _MIX) >> np.uint64(32)
    return (h % np.uint64(partitions)).astype(np.int64)


def _write(table: pa.Table, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    pq.write_table(table, tmp, compression="zstd")
    tmp.replace(path)


def export_events(events: Interactions, directory: str | Path, *, partitions: int) -> list[Path]:
    """Write ``events`` partitioned by user hash; returns the files written (empty partitions
    get no file)."""
    d = Path(directory) / "events"
    part = user_partition(events.user, partitions)
    order = np.lexsort((events.timestamp, part))
    bounds = np.searchsorted(part[order], np.arange(partitions + 1))
    out = []
    for k in range(partitions):
        rows = order[bounds[k]:bounds[k + 1]]
        if len(rows) == 0:
            continue
        table = pa.table({"user": events.user[rows], "item": events.item[rows],
                          "timestamp": events.timestamp[rows], "weight": events.weight[rows]})
        path = d / f"part={k}" / "events.parquet"
        _write(table, path)
        out.append(path)
    return out


def read_events(directory: str | Path, *, n_users: int, n_items: int) -> Interactions:
    """All events of an ``export_events`` directory (every partition), in partition order."""
    files = sorted((Path(directory) / "events").glob("part=*/events.parquet"))
    if not files:
        return Interactions.from_arrays(np.empty(0), np.empty(0), n_users=n_users, n_items=n_items)
    t = pa.concat_tables([pq.read_table(f) for f in files])
    return Interactions.from_arrays(t["user"].to_numpy(), t["item"].to_numpy(),
                                    weight=t["weight"].to_numpy(), timestamp=t["timestamp"].to_numpy(),
                                    n_users=n_users, n_items=n_items)


def export_lists(lists: Lists, sources: list[str], directory: str | Path, *,
                 partitions: int) -> list[int]:
    """Write candidate lists partitioned by their user's hash; returns the partitions written."""
    d = Path(directory) / "lists"
    user = np.asarray(lists.user, np.int64)
    row_list = np.asarray(lists.row_list, np.int64)
    list_part = user_partition(user, partitions)
    row_part = list_part[row_list]
    device = (np.full(len(user), np.nan) if lists.device is None else np.asarray(lists.device, np.float64))
    l_order = np.argsort(list_part, kind="stable")
    r_order = np.argsort(row_part, kind="stable")
    l_bounds = np.searchsorted(list_part[l_order], np.arange(partitions + 1))
    r_bounds = np.searchsorted(row_part[r_order], np.arange(partitions + 1))
    written = []
    for k in range(partitions):
        li = l_order[l_bounds[k]:l_bounds[k + 1]]
        ri = r_order[r_bounds[k]:r_bounds[k + 1]]
        if len(li) == 0:
            continue
        _write(pa.table({"list": li, "user": user[li], "t": np.asarray(lists.t, np.int64)[li],
                         "device": device[li]}), d / f"part={k}" / "lists.parquet")
        cols: dict[str, np.ndarray] = {"row": ri, "list": row_list[ri], "item": np.asarray(lists.row_item, np.int64)[ri]}
        for s in sources:
            cols[f"score__{s}"] = np.asarray(lists.src_score[s], np.float64)[ri]
            cols[f"rank__{s}"] = np.asarray(lists.src_rank[s], np.float64)[ri]
        _write(pa.table(cols), d / f"part={k}" / "rows.parquet")
        written.append(k)
    return written


def read_list_partitions(directory: str | Path, parts: list[int], sources: list[str]) -> tuple[np.ndarray, Lists]:
    """(global row index int64 [n], the Lists of partitions ``parts``, list indices renumbered
    0..L-1) -- whole lists only, since a list never spans partitions."""
    d = Path(directory) / "lists"
    lt = pa.concat_tables([pq.read_table(d / f"part={k}" / "lists.parquet") for k in parts])
    rt = pa.concat_tables([pq.read_table(d / f"part={k}" / "rows.parquet") for k in parts])
    global_list = lt["list"].to_numpy()
    order = np.argsort(global_list)
    local = order[np.searchsorted(global_list[order], rt["list"].to_numpy())]
    device = lt["device"].to_numpy()
    lists = Lists(user=lt["user"].to_numpy(), t=lt["t"].to_numpy(), row_list=local,
                  row_item=rt["item"].to_numpy(),
                  src_score={s: rt[f"score__{s}"].to_numpy() for s in sources},
                  src_rank={s: rt[f"rank__{s}"].to_numpy() for s in sources},
                  device=None if np.isnan(device).all() else device)
    return rt["row"].to_numpy(), lists
