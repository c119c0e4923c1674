"""`winnow batch-recommend` with ``--model NAME`` or ``--engine ray``: one fitted model scores users in bulk.

The default batch-recommend runs the service's pipeline (winnow.offline.batch_recommend); this
module is the path for a named registry model (``--model als``, ``ease``, ...) or the offline
stacked ranker (``--model stacked``, training.stacked), and for ``--engine ray`` (Ray Data
workers score user chunks with the same fitted model: the Ray path does not run the service's
pipeline). It also owns what both paths share: the users' order (``batch_users``) and the CSV
(``write_recs_csv``).

Contract (what others rely on to hold winnow against their protocols):
- Fits on the events given, and nothing else. Every item in --items is a candidate, with
  interactions or not; --candidates restricts the choice to the listed item ids.
- Users: those in --users (or, without it, everyone in the events). A user without events is
  served by the cold-start path from their attributes (segment popularity, ``[coldstart]``
  user_chain); candidate items without events are scored from their content (two-tower).
- A user's training items are never recommended. Output CSV: user_id,item_id,rank,score with
  rank 1 = best, at most k rows per user (fewer only when fewer candidates remain).
"""

from __future__ import annotations

import csv
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from winnow.core.config import WinnowConfig
from winnow.core.errors import ConfigError, DataError
from winnow.core.extras import check_extras
from winnow.data.interactions import Dataset
from winnow.models.base import Recommender
from winnow.models.coldstart import ColdStartHook
from winnow.models.registry import build_model

@dataclass(frozen=True)
class BatchSummary:
    users: int
    cold_users: int
    rows: int
    model: str


def choose_model(dataset: Dataset, config: WinnowConfig, requested: str | None) -> str:
    """The configured best retrieval model: EASE while the catalog fits its n^2 memory, else ALS."""
    if requested:
        return requested
    return "ease" if dataset.interactions.n_items <= config.models.ease.max_items else "als"


def _fit_model(dataset: Dataset, config: WinnowConfig, requested: str | None) -> tuple[Recommender, str]:
    """The offline stacked ranker (training.stacked: retrieval + learned ranker) when
    ``requested == "stacked"`` or (None and ``[ranker] enabled``); the best retrieval model
    otherwise, or when the data is too small to train a ranker (the returned name says so)."""
    train = dataset.interactions
    note = ""
    if requested == "stacked" or (requested is None and config.ranker.enabled):
        from winnow.training.stacked import InsufficientRankerData, StackedRankerRecommender

        try:
            return StackedRankerRecommender(dataset, config).fit(train), "stacked"
        except InsufficientRankerData as exc:
            note = f" (no ranker: {exc})"
        requested = None
    name = choose_model(dataset, config, requested)
    return build_model(name, config).fit(train), name + note


def batch_users(dataset: Dataset, users: list[str] | None) -> tuple[np.ndarray, np.ndarray]:
    """The users to serve as (warm, cold) user indices, int64: ``users`` (external ids; every
    user with events when None) split by whether they have events, each in index order as given."""
    train = dataset.interactions
    if users is None:
        user_idx = np.unique(train.user).astype(np.int64)
    else:
        user_idx = dataset.user_ids.encode(users).astype(np.int64)
    has_events = np.bincount(train.user, minlength=train.n_users) > 0
    return user_idx[has_events[user_idx]], user_idx[~has_events[user_idx]]


def read_candidates(path: Path, dataset: Dataset) -> np.ndarray:
    """Item indices of the ids listed one per line; unknown ids are an error naming the line."""
    out = []
    with open(path, encoding="utf-8") as fh:
        for line_no, line in enumerate(fh, start=1):
            ext = line.strip()
            if not ext:
                continue
            idx = dataset.item_ids.get(ext)
            if idx < 0:
                raise DataError("candidate item not in --items or the events", source=str(path),
                                line=line_no, value=ext)
            out.append(idx)
    if not out:
        raise DataError("no candidate ids", source=str(path))
    return np.unique(np.asarray(out, dtype=np.int64))


def _rows(dataset: Dataset, users: np.ndarray, recs: np.ndarray,
          scores: np.ndarray) -> Iterator[tuple[str, str, int, float]]:
    """(user id, item id, rank from 1, score) of a chunk's top-k arrays (-1 padding skipped)."""
    user_ext = dataset.user_ids.decode(users)
    for u_ext, row, srow in zip(user_ext, recs, scores, strict=False):
        keep = row >= 0
        items = dataset.item_ids.decode(row[keep])
        for rank, (i_ext, s) in enumerate(zip(items, srow[keep], strict=False), start=1):
            yield u_ext, i_ext, rank, float(s)


def write_recs_csv(out: Path, rows: Iterable[tuple[str, str, int, float]]) -> int:
    """Write batch-recommend's CSV (header user_id,item_id,rank,score; score as %.6g) to a
    temporary name and rename it to ``out``, so a failure leaves no partial file; rows written."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=out.name, suffix=".tmp", dir=out.parent)
    n = 0
    try:
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(("user_id", "item_id", "rank", "score"))
            for u_ext, i_ext, rank, score in rows:
                writer.writerow((u_ext, i_ext, rank, f"{score:.6g}"))
                n += 1
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return n


def batch_recommend(dataset: Dataset, config: WinnowConfig, *, k: int, out: Path,
                    users: list[str] | None = None, candidates: np.ndarray | None = None,
                    model_name: str | None = None, batch_size: int = 2048,
                    engine: str | None = None) -> BatchSummary:
    """Fit on ``dataset`` and write recommendations for ``users`` (external ids) to ``out``.

    ``engine`` ("local" | "ray", default ``[training] engine``) scores the user chunks there
    (winnow.engine: Ray Data workers with the same fitted model); the file is the same.

    The file is written to a temporary name and renamed, so a failure leaves no partial file.
    """
    if k < 1:
        raise ConfigError(f"k must be >= 1, got {k}")
    _check_cold_item_extra(dataset, config, candidates)
    from winnow.engine import open_engine

    with open_engine(config, engine) as eng:  # validated (ConfigError) before any work
        return _batch_recommend(dataset, config, eng, k=k, out=out, users=users, candidates=candidates,
                                model_name=model_name, batch_size=batch_size)


def _check_cold_item_extra(dataset: Dataset, config: WinnowConfig, candidates: np.ndarray | None) -> None:
    """Candidate items without events are scored from content by the two-tower (ColdStartHook)
    when ``[coldstart] items`` is on: without the neural extra, fail here, before any fitting,
    with the pip command (the choice depends on the data, so load_config cannot make it)."""
    if not config.coldstart.items:
        return
    train = dataset.interactions
    cold = np.bincount(train.item, minlength=train.n_items) == 0
    if candidates is not None:
        cold = cold[np.asarray(candidates, np.int64)]
    if cold.any():
        check_extras({"neural": f"[coldstart] items = true with {int(cold.sum()):,} candidate items "
                                "that have no events (set it to false to leave them out)"})


def _batch_recommend(dataset: Dataset, config: WinnowConfig, eng: Any, *, k: int, out: Path,
                     users: list[str] | None, candidates: np.ndarray | None, model_name: str | None,
                     batch_size: int) -> BatchSummary:
    train = dataset.interactions
    model, name = _fit_model(dataset, config, model_name)
    # cold-start hook (winnow.models.coldstart): users with few/no events get their
    # [coldstart] user_chain (attribute-driven segment popularity blended with the model),
    # candidate items with no events are scored from content; everyone else goes to `model`
    hook = ColdStartHook(dataset, config, model=model, train=train, candidates=candidates)
    exclude = train.to_csr(binary=True)
    warm, cold = batch_users(dataset, users)
    chunks = [part[s:s + batch_size] for part in (warm, cold) for s in range(0, len(part), batch_size)]
    rows = write_recs_csv(out, (row for chunk, recs, scores in eng.recommend_chunks(
        hook, chunks, k, exclude=exclude, candidates=candidates) for row in _rows(dataset, chunk, recs, scores)))
    return BatchSummary(users=len(warm) + len(cold), cold_users=len(cold), rows=rows, model=name)
