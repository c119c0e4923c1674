"""The Store contract: events, catalog, users and impressions behind one small interface.

The embedded default implementation lives in winnow.data.sqlite_store; other backends
(PostgreSQL, ...) are new implementations of this class, tested by the same contract suite
(tests/contract/test_store_contract.py).

Guarantees every implementation gives:
- A write that returns is durable (committed). A write that raises wrote nothing.
- append_events() validates the whole batch first; one bad row rejects the batch with a
  DataError naming the row, field and value.
- Events with an event_id already stored are skipped (idempotent retries), not duplicated.
- Another process may read while one process writes.
- Failures come from one error tree (winnow.core.errors): StoreUnavailableError when the backend
  cannot answer now (down, read-only, disk full, locked too long), StoreError when it refused
  the operation. A driver's own exception (sqlite3.Error, psycopg.Error, OSError) never escapes
  a Store method: each implementation maps them (``maps_driver_errors``), so callers catch
  ``StoreError`` and name no driver.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from winnow.data.store_rows import SCALARS_BATCH, item_scalars_frame
from winnow.data.user_sample import check_keep
from winnow.data.user_sample import in_sample as user_sample_mask
from winnow.data.rollouts import Rollout, RolloutDecision


@dataclass(frozen=True)
class EventLog:
    """All (or a time range of) stored events, columnar, for training.

    ``user``/``item``/``event_type`` are int codes into ``user_ids``/``item_ids``/``event_types``
    (the store's own stable key order; training builds IdMaps from these lists).
    """

    user: np.ndarray         # int32 [n]
    item: np.ndarray         # int32 [n]
    event_type: np.ndarray   # int16 [n]
    value: np.ndarray        # float64 [n], NaN when absent
    timestamp: np.ndarray    # int64 [n], unix seconds
    user_ids: list[str]
    item_ids: list[str]
    event_types: list[str]

    def __len__(self) -> int:
        return len(self.user)


class Store(ABC):
    """Interface of winnow's persistent state. All ids are external strings."""

    # --- writes ---------------------------------------------------------------------------
    @abstractmethod
    def append_events(self, events: pd.DataFrame, *, source: str = "events") -> int:
        """Validate and durably append events (columns: winnow.data.schema.EVENT_COLUMNS;
        optional ones may be absent). Returns how many were newly written (duplicates by
        event_id are skipped). Raises DataError (naming ``source``, row and field) and writes
        nothing if any row is invalid."""

    @abstractmethod
    def upsert_items(self, items: pd.DataFrame, *, source: str = "items") -> int:
        """Insert or replace items (ITEM_COLUMNS; extra columns become attributes). Atomic."""

    @abstractmethod
    def upsert_users(self, users: pd.DataFrame, *, source: str = "users") -> int:
        """Insert or replace users (USER_COLUMNS; extra columns become attributes). Atomic."""

    @abstractmethod
    def import_all(self, *, events: pd.DataFrame | None = None, items: pd.DataFrame | None = None,
                   users: pd.DataFrame | None = None, source: str = "import") -> dict[str, int]:
        """One all-or-nothing import of items, users and events (one transaction)."""

    @abstractmethod
    def patch_item(self, item_id: str, *, available: bool | None = None,
                   sponsored: bool | None = None, attributes: dict[str, Any] | None = None) -> None:
        """Change one item's availability / sponsored flag / merge attributes; UnknownIdError if absent."""

    @abstractmethod
    def log_impressions(self, impressions: list[dict[str, Any]]) -> None:
        """Durably store served slates: each dict has request_id, user_id, timestamp, model_version,
        surface, context (dict), items (list of {item_id, position, score, sources, propensity})."""

    @abstractmethod
    def delete_user(self, user_id: str) -> dict[str, Any]:
        """Erase a user (personal-data deletion), all or nothing: their events (also from
        read_events), profile and impressions; the external id is no longer findable.
        Returns {"user_id", "found": bool, "events": n, "profile": bool, "impressions": n}.
        An unknown user is not an error (found=False, zero counts)."""

    # --- reads ----------------------------------------------------------------------------
    @abstractmethod
    def read_events(self, *, since: int | None = None, until: int | None = None) -> EventLog:
        """All events with since <= timestamp < until, columnar (fast path for training)."""

    @abstractmethod
    def read_items(self) -> pd.DataFrame:
        """The catalog as a DataFrame with ITEM_COLUMNS (categories as list, attributes as dict)."""

    def read_item_scalars(self) -> pd.DataFrame:
        """Every item's ``ITEM_SCALARS`` (item_id and creator as object columns of str,
        created_at nullable Int64, available and sponsored bool), in ``read_items`` order, without decoding titles,
        texts, categories and attributes: what a serving start overlays on a bundle's catalog
        and what the drift monitor dates items by, O(items) with no JSON at 10^6 items.
        Generic version: a projection of ``read_items``; SQL stores select the columns."""
        items = self.read_items()
        created = [None if v is pd.NA else int(v) for v in items["created_at"]]
        return item_scalars_frame(list(zip(items["item_id"].tolist(), items["creator"].tolist(), created,
                                           items["available"].tolist(), items["sponsored"].tolist(), strict=True)))

    def iter_item_scalars(self, batch: int = SCALARS_BATCH) -> Iterator[pd.DataFrame]:
        """``read_item_scalars`` as consecutive frames of at most ``batch`` rows (the same rows in
        the same order, each frame indexed from 0; ValueError for ``batch`` < 1), read from one
        snapshot. For a serving worker that must never hold the GIL for the whole catalog at
        once: building a challenger's catalog overlay beside live requests (one 10^6-row read
        and frame held it for ~0.4 s). Generic version: slices of ``read_item_scalars``; SQL
        stores fetch ``batch`` rows at a time."""
        if batch < 1:
            raise ValueError(f"batch must be >= 1, got {batch}")
        items = self.read_item_scalars()
        for start in range(0, len(items), batch):
            yield items.iloc[start:start + batch].reset_index(drop=True)

    def read_items_by_id(self, item_ids: list[str]) -> pd.DataFrame:
        """The catalog rows (ITEM_COLUMNS, as ``read_items``) of ``item_ids`` that exist, in the
        order given (duplicates once, unknown ids left out). Generic version: a filter of
        ``read_items``; SQL stores look the ids up."""
        return in_given_order(self.read_items(), item_ids)

    @abstractmethod
    def read_users(self) -> pd.DataFrame:
        """All users as a DataFrame with USER_COLUMNS."""

    @abstractmethod
    def get_item(self, item_id: str) -> dict[str, Any] | None:
        """One item as a dict of ITEM_COLUMNS, or None."""

    @abstractmethod
    def get_user(self, user_id: str) -> dict[str, Any] | None:
        """One user as a dict of USER_COLUMNS, or None (a user known only from events is
        returned with empty attributes)."""

    @abstractmethod
    def user_events(self, user_id: str, *, limit: int = 100) -> pd.DataFrame:
        """The user's most recent events (EVENT_COLUMNS), newest first."""

    # True when ``user_version`` answers: several processes may then keep the same users'
    # online state in memory and detect each other's writes (serving ``workers > 1``).
    tracks_user_versions: ClassVar[bool] = False

    def user_version(self, user_id: str) -> int | None:
        """A number that grows whenever an event of the user is appended (the store's latest
        event sequence number for the user), None for a user without events or when the
        store does not track it (``tracks_user_versions`` False; the default)."""
        return None

    @abstractmethod
    def read_impressions(self, *, since: int | None = None) -> list[dict[str, Any]]:
        """Stored impressions (same shape as log_impressions' input), oldest first."""

    def _window_impressions(self, since: int, until: int, user_sample: int | None) -> list[dict[str, Any]]:
        """The generic reads' impressions: since <= timestamp < until, of the sampled users."""
        imps = [imp for imp in self.read_impressions(since=since) if int(imp["timestamp"]) < until]
        keep = user_sample_mask([imp["user_id"] for imp in imps], check_keep(user_sample))
        return [imp for imp, k in zip(imps, keep, strict=True) if k]

    def read_shown_items(self, *, since: int, until: int, user_sample: int | None = None) -> pd.DataFrame:
        """One row per item of the impressions with since <= timestamp < until, oldest first,
        columnar: user_id, item_id (str), timestamp (int64), score (float64; 0.0 when the slate
        entry has none), model_version (str, "" when none). For drift monitoring
        (winnow.evaluation.drift_served), which reads millions of these per window.
        ``user_sample``: only the users of that sample (winnow.data.user_sample: the buckets
        kept out of ``BUCKETS``; None = everyone); the same argument in ``read_source_scores``,
        ``read_candidate_sets`` and ``read_feedback_events`` selects the same users.

        Default: built on ``read_impressions`` (a Python loop over impressions); a backend may
        override it with a query that unnests the slates itself."""
        rows = [(str(imp["user_id"]), str(it["item_id"]), int(imp["timestamp"]), float(it.get("score") or 0.0),
                 str(imp.get("model_version") or ""))
                for imp in self._window_impressions(since, until, user_sample) for it in imp["items"]]
        return shown_frame(rows)

    def read_source_scores(self, *, since: int, until: int, user_sample: int | None = None) -> pd.DataFrame:
        """The source scores logged with the shown items of the impressions with since <=
        timestamp < until (each slate entry's ``src``: {source name: [score, ...]}): one row per
        (item, source), columns source (str), score (float64); ``user_sample`` as in
        ``read_shown_items``. Default: built on ``read_impressions``; a backend may override it."""
        rows = [(str(name), float(val[0]))
                for imp in self._window_impressions(since, until, user_sample)
                for it in imp["items"] for name, val in (it.get("src") or {}).items()]
        return pd.DataFrame({"source": pd.Series([r[0] for r in rows], dtype=object),
                             "score": np.fromiter((r[1] for r in rows), np.float64, count=len(rows))})

    def sample_impressions(self, *, since: int, until: int, model_version: str | None,
                           limit: int) -> list[dict[str, Any]]:
        """At most ``limit`` of the impressions with since <= timestamp < until logged by
        ``model_version`` (None: by any bundle; same shape as ``read_impressions``), oldest first: every
        ceil(n / limit)-th of the n matching ones in (timestamp, store order), so the sample
        spans the whole window and the same log gives the same sample. For the drift monitor's
        ranker-feature profile (winnow.evaluation.drift_features), which recomputes features for
        a bounded number of slates. Default: built on ``read_impressions``; a backend may
        override it with a query that returns only the sample."""
        if limit < 1:
            raise ValueError(f"sample_impressions: limit must be >= 1, got {limit}")
        rows = [imp for imp in self.read_impressions(since=since)
                if int(imp["timestamp"]) < until
                and (model_version is None or str(imp.get("model_version") or "") == model_version)]
        return rows[::-(-len(rows) // limit) or 1][:limit]

    def count_impressions(self, *, since: int, until: int) -> int:
        """How many impressions have since <= timestamp < until: what the drift monitor sizes
        its served-slate user sample by (winnow.evaluation.drift_served), so it must not read the
        slates. Default: built on ``read_impressions``; the SQL stores count on their timestamp
        index (winnow.data.sample_sql)."""
        return sum(1 for imp in self.read_impressions(since=since) if int(imp["timestamp"]) < until)

    def read_candidate_sets(self, *, since: int, until: int, user_sample: int | None = None) -> pd.DataFrame:
        """The candidate sets logged with the impressions with since <= timestamp < until (a
        sampled share of requests carries ``context.candidates``, the external ids of the
        request's merged retrieval candidates: ``[drift] candidate_sample``): one row per
        (impression, candidate), columns request_id, user_id, item_id (str), timestamp (int64);
        ``user_sample`` as in ``read_shown_items``. Default: built on ``read_impressions``; a
        backend may override it."""
        rows = [(str(imp["request_id"]), str(imp["user_id"]), str(c), int(imp["timestamp"]))
                for imp in self._window_impressions(since, until, user_sample)
                if isinstance(imp.get("context"), dict) and isinstance(imp["context"].get("candidates"), list)
                for c in imp["context"]["candidates"]]
        return candidate_frame(rows)

    def read_feedback_events(self, *, event_types: Sequence[str],
                             since: int | None = None, user_sample: int | None = None) -> pd.DataFrame:
        """Events of the given types with timestamp >= ``since`` (all when None): a DataFrame with
        columns user_id, item_id, event_type (str) and timestamp (int64, unix seconds), sorted by
        timestamp. Feeds the service's click statistics (winnow.serving.item_stats);
        ``user_sample`` as in ``read_shown_items`` (the drift monitor's positives).

        Default: built on ``read_events``; a backend may override it with a narrower query."""
        log = self.read_events(since=since)
        cols = ["user_id", "item_id", "event_type", "timestamp"]
        wanted = [i for i, name in enumerate(log.event_types) if name in set(event_types)]
        keep = np.isin(log.event_type, np.asarray(wanted, np.int64)) if len(log) else np.zeros(0, bool)
        if check_keep(user_sample) is not None and keep.any():
            keep &= user_sample_mask(log.user_ids, user_sample)[log.user]
        if not keep.any():
            return pd.DataFrame({c: pd.Series(dtype="int64" if c == "timestamp" else object) for c in cols})
        users, items, types = (np.asarray(names, dtype=object) for names in
                               (log.user_ids, log.item_ids, log.event_types))
        frame = pd.DataFrame({"user_id": users[log.user[keep]], "item_id": items[log.item[keep]],
                              "event_type": types[log.event_type[keep]],
                              "timestamp": log.timestamp[keep].astype(np.int64)})
        return frame.sort_values("timestamp", kind="stable").reset_index(drop=True)

    def item_daily(self, item_id: str, *, first_day: int, days: int) -> dict[str, Any]:
        """One item's activity per UTC day ``first_day .. first_day + days - 1`` (day = unix
        seconds // 86400): {"events": {event type: [count per day]} (types with no event in the
        range absent), "impressions": [logged slates showing the item, per day], "position_sum":
        sum of its positions over those slates}. This default scans the event and impression
        logs of the range (linear in their size); stores override it with indexed reads."""
        lo, hi = first_day * 86400, (first_day + days) * 86400
        log = self.read_events(since=lo, until=hi)
        events: dict[str, list[int]] = {}
        code = log.item_ids.index(item_id) if item_id in log.item_ids else -1
        if len(log) and code >= 0:
            mask = log.item == code
            day = (np.asarray(log.timestamp)[mask] // 86400 - first_day).astype(np.int64)
            types = np.asarray(log.event_type)[mask]
            for t in np.unique(types):
                counts = np.bincount(day[types == t], minlength=days)[:days]
                events[str(log.event_types[int(t)])] = counts.astype(int).tolist()
        shown, pos_sum = [0] * days, 0
        for imp in self.read_impressions(since=lo):
            d = int(imp["timestamp"]) // 86400 - first_day
            if not 0 <= d < days:
                continue
            for it in imp["items"]:
                if str(it["item_id"]) == item_id:
                    shown[d] += 1
                    pos_sum += int(it.get("position", 0))
        return {"events": events, "impressions": shown, "position_sum": pos_sum}

    @abstractmethod
    def impression_outcomes(self, *, since: int | None = None) -> pd.DataFrame:
        """One row per shown item of the impressions with timestamp >= ``since``: request_id,
        user_id, timestamp, model_version, surface, item_id, position, score, propensity, and
        ``events``: the event types later logged for that item with the same
        ``context.request_id`` (empty list when nothing followed)."""

    @abstractmethod
    def impressions_after(self, *, after_seq: int, since: int = 0) -> list[tuple[int, dict[str, Any]]]:
        """(store sequence number, impression as ``read_impressions`` returns it) of every
        impression stored with a sequence number above ``after_seq`` and timestamp >= ``since``,
        in sequence order (the incremental rollout aggregates read what is new this way; see
        ``request_events`` on PostgreSQL's commit order)."""

    @abstractmethod
    def request_events(self, *, after_seq: int, event_types: Sequence[str]) -> list[tuple[int, str, str, str]]:
        """(seq, request_id, item_id, event_type) of every event logged with a
        ``context.request_id`` whose type is in ``event_types`` and whose store sequence number is
        above ``after_seq`` (0: from the first), in sequence order. The incremental rollout
        aggregates (winnow.rollout.arms.ArmTracker) read only what arrived since their last look.
        PostgreSQL assigns sequence numbers before commit, so a reader may see seq n+1 before n:
        callers re-read a window behind their watermark (ArmTracker does)."""

    # --- rollouts (winnow.data.rollouts: layout and types; winnow.rollout: the rules) --------
    @abstractmethod
    def start_rollout(self, rollout: Rollout) -> Rollout:
        """Store a new rollout (its ``id`` and ``revision`` are assigned here, ``decisions``
        stored in order) and return it. At most one rollout runs: when one is running this
        raises RolloutError (409) naming it and writes nothing -- atomically, also against
        other processes and replicas starting one at the same moment."""

    @abstractmethod
    def rollout(self, rollout_id: int | None = None) -> Rollout | None:
        """Rollout ``rollout_id`` (None if absent); without an id: the running rollout, else the
        most recent one, else None."""

    @abstractmethod
    def update_rollout(self, rollout_id: int, *, revision: int, changes: dict[str, Any],
                       decision: RolloutDecision | None = None) -> Rollout | None:
        """Compare-and-set: if the rollout is still at ``revision``, apply ``changes`` (state and/or
        body fields), bump the revision, append ``decision``, all in one transaction, and return
        the new record; None when another writer changed it first (nothing written). RolloutError
        (404) for an unknown id, (422) for an unknown field or state."""

    @abstractmethod
    def log_shadow(self, rollout_id: int, records: list[dict[str, Any]]) -> None:
        """Durably append shadow comparison records (JSON-able dicts with ``ts``), one transaction."""

    @abstractmethod
    def read_shadow(self, rollout_id: int, *, limit: int | None = None) -> list[dict[str, Any]]:
        """The rollout's shadow records, oldest first (only the newest ``limit`` when given)."""

    @abstractmethod
    def counts(self) -> dict[str, int]:
        """{"events": n, "items": n, "users": n, "impressions": n}."""

    @abstractmethod
    def close(self) -> None:
        """Release connections. Idempotent."""




SHOWN_COLUMNS = ["user_id", "item_id", "timestamp", "score", "model_version"]


def shown_frame(rows: Sequence[Sequence[Any]]) -> pd.DataFrame:
    """``Store.read_shown_items``' frame from (user_id, item_id, timestamp, score, model_version)
    rows, with its dtypes also when empty."""
    cols = list(zip(*rows)) if rows else [()] * len(SHOWN_COLUMNS)
    return pd.DataFrame({"user_id": pd.Series(cols[0], dtype=object).astype(str),
                         "item_id": pd.Series(cols[1], dtype=object).astype(str),
                         "timestamp": np.asarray(cols[2], np.int64),
                         "score": np.asarray([0.0 if v is None else v for v in cols[3]], np.float64),
                         "model_version": pd.Series(["" if v is None else v for v in cols[4]], dtype=object)})


def candidate_frame(rows: Sequence[Sequence[Any]]) -> pd.DataFrame:
    """``Store.read_candidate_sets``' frame from (request_id, user_id, item_id, timestamp) rows,
    with its dtypes also when empty."""
    cols = list(zip(*rows)) if rows else [()] * 4
    return pd.DataFrame({"request_id": pd.Series(cols[0], dtype=object).astype(str),
                         "user_id": pd.Series(cols[1], dtype=object).astype(str),
                         "item_id": pd.Series(cols[2], dtype=object).astype(str),
                         "timestamp": np.asarray(cols[3], np.int64)})


def in_given_order(items: pd.DataFrame, item_ids: list[str]) -> pd.DataFrame:
    """The rows of ``items`` whose item_id is in ``item_ids``, in that order (each once)."""
    pos = {iid: k for k, iid in enumerate(dict.fromkeys(str(i) for i in item_ids))}
    sub = items[items["item_id"].astype(str).isin(pos)]
    order = np.argsort([pos[str(i)] for i in sub["item_id"]], kind="stable")
    return sub.iloc[order].reset_index(drop=True)
