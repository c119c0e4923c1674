"""Seeded train/test splits of ``Interactions`` (dense indices), vectorised with numpy.

Every split first collapses repeated (user, item) events into one row per pair
(``dedupe_pairs``: the pair keeps the *last* event's timestamp and the *sum* of its weights), so
a pair can never be in both train and test. Both sides of a ``Split`` are therefore deduplicated
and sorted by (user, item); index spaces (n_users, n_items) are unchanged.

Splits:
- ``stratified_split``: per user, a random ``ratio`` of the pairs go to train (rounded half up),
  and every user with >= 2 pairs keeps >= 1 on each side; users with 1 pair are train-only
  (as Microsoft Recommenders' python_stratified_split).
- ``temporal_split``: one global cutoff (a timestamp, or the ``quantile`` of pair timestamps);
  train has ts <= cutoff, test ts > cutoff, so max(train ts) <= min(test ts).
- ``leave_last_split``: per user, the ``n`` most recent pairs go to test, keeping >= 1 in train
  (ties in time broken by a seeded random order).
- ``validation_split``: the same methods applied to a training part, to carve validation from it.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from collections.abc import Callable
from typing import Any

import numpy as np

from winnow.data.interactions import Interactions


@dataclass(frozen=True)
class Split:
    """A train/test pair. ``params`` records the method's arguments (and the cutoff used)."""

    train: Interactions
    test: Interactions
    name: str
    params: dict[str, Any] = field(default_factory=dict)


def dedupe_pairs(interactions: Interactions) -> Interactions:
    """One row per (user, item): last timestamp, summed weight; rows sorted by (user, item)."""
    inter = interactions
    if len(inter) == 0:
        return inter
    key = inter.user.astype(np.int64) * inter.n_items + inter.item
    order = np.argsort(key)
    skey = key[order]
    starts = np.flatnonzero(np.r_[True, skey[1:] != skey[:-1]])
    weight = np.add.reduceat(inter.weight[order].astype(np.float64), starts).astype(np.float32)
    last_ts = np.maximum.reduceat(inter.timestamp[order], starts)
    ukey = skey[starts]
    return Interactions((ukey // inter.n_items).astype(np.int32),
                        (ukey % inter.n_items).astype(np.int32), weight, last_ts,
                        inter.n_users, inter.n_items)


def _user_ranks(user: np.ndarray, rng: np.random.Generator,
                timestamp: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(rank of each row within its user, rows of that user), ranking by timestamp when given,
    ties (or everything, without timestamps) in a random order drawn from ``rng``.

    Sorts one packed int64 key (user | time offset | random bits) when it fits in 63 bits, which
    is several times faster than a multi-key lexsort on 10M rows."""
    n = len(user)
    u64 = user.astype(np.int64)
    t_off = np.zeros(n, np.int64) if timestamp is None else timestamp - timestamp.min()
    bits_u = int(u64.max()).bit_length() if n else 0
    bits_t = int(t_off.max()).bit_length() if n else 0
    free = min(63 - bits_u - bits_t, 32)
    if free >= 0:
        key = (u64 << (bits_t + free)) | (t_off << free)
        if free:
            key |= rng.integers(0, 1 << free, n, dtype=np.int64)
        order = np.argsort(key)
    else:  # very wide time range: a three-key lexsort
        order = np.lexsort((rng.random(n), t_off, u64))
    su = user[order]
    starts = np.flatnonzero(np.r_[True, su[1:] != su[:-1]])
    counts = np.diff(np.r_[starts, n])
    rank = np.empty(n, np.int64)
    rank[order] = np.arange(n) - np.repeat(starts, counts)
    n_rows = np.empty(n, np.int64)
    n_rows[order] = np.repeat(counts, counts)
    return rank, n_rows


def _make(pairs: Interactions, train_mask: np.ndarray, name: str, params: dict[str, Any]) -> Split:
    return Split(pairs.subset(train_mask), pairs.subset(~train_mask), name, params)


def stratified_split(interactions: Interactions, ratio: float = 0.75, *, seed: int = 0) -> Split:
    """Per-user random split: ``round_half_up(ratio * n)`` of each user's n pairs go to train,
    clipped to [1, n - 1] when n >= 2; single-pair users go to train."""
    if not 0.0 < ratio < 1.0:
        raise ValueError(f"stratified_split: ratio must be in (0, 1), got {ratio!r}")
    pairs = dedupe_pairs(interactions)
    rank, n = _user_ranks(pairs.user, np.random.default_rng(seed))
    n_train = np.floor(ratio * n + 0.5).astype(np.int64)
    n_train = np.where(n >= 2, np.clip(n_train, 1, n - 1), n)
    return _make(pairs, rank < n_train, "stratified", {"ratio": ratio, "seed": seed})


def temporal_split(interactions: Interactions, quantile: float | None = 0.8, *,
                   cutoff: int | None = None) -> Split:
    """Global time split: train ts <= cutoff < test ts. ``cutoff`` (unix seconds) wins over
    ``quantile``; with a quantile the cutoff is the lower-interpolated quantile of pair timestamps
    (ties at the cutoff all go to train, so the test share can be below 1 - quantile)."""
    pairs = dedupe_pairs(interactions)
    if cutoff is None:
        if quantile is None or not 0.0 < quantile < 1.0:
            raise ValueError(f"temporal_split: quantile must be in (0, 1), got {quantile!r}")
        if len(pairs) == 0:
            raise ValueError("temporal_split: no interactions to take a quantile of")
        cutoff = int(np.quantile(pairs.timestamp, quantile, method="lower"))
        params: dict[str, Any] = {"quantile": quantile, "cutoff": cutoff}
    else:
        params = {"quantile": None, "cutoff": int(cutoff)}
    return _make(pairs, pairs.timestamp <= int(cutoff), "temporal", params)


def leave_last_split(interactions: Interactions, n: int = 1, *, seed: int = 0) -> Split:
    """Per user, the ``n`` latest pairs go to test, but each user keeps >= 1 pair in train
    (a user with m pairs gives min(n, m - 1) to test). Equal timestamps are ordered by a seeded
    random key, so the result is deterministic."""
    if n < 1:
        raise ValueError(f"leave_last_split: n must be >= 1, got {n!r}")
    pairs = dedupe_pairs(interactions)
    rank, m = _user_ranks(pairs.user, np.random.default_rng(seed), pairs.timestamp)
    n_test = np.minimum(n, m - 1)
    return _make(pairs, rank < m - n_test, "leave_last", {"n": n, "seed": seed})


SPLITTERS: dict[str, Callable[..., Split]] = {"stratified": stratified_split, "temporal": temporal_split,
             "leave_last": leave_last_split}


def make_split(interactions: Interactions, method: str = "stratified", **params: Any) -> Split:
    """Dispatch by name: "stratified" (ratio, seed), "temporal" (quantile | cutoff),
    "leave_last" (n, seed)."""
    try:
        fn = SPLITTERS[method]
    except KeyError:
        raise ValueError(f"unknown split method {method!r}; expected one of {sorted(SPLITTERS)}") from None
    try:
        inspect.signature(fn).bind(interactions, **params)
    except TypeError as exc:
        raise ValueError(f"bad parameters for split {method!r}: {params!r} ({exc})") from None
    return fn(interactions, **params)


def validation_split(train: Interactions, method: str | Split = "stratified",
                     **params: Any) -> Split:
    """Carve validation out of a training part only: returns Split(train=fit part,
    test=validation). ``method`` may be a name (with ``params``) or the outer ``Split``, whose
    method and params are reused (a temporal split's absolute cutoff is dropped in favour of
    its quantile, since the cutoff would put nothing in validation)."""
    if isinstance(method, Split):
        outer = dict(method.params)
        if method.name == "temporal":
            outer.pop("cutoff", None)
            if outer.get("quantile") is None:
                outer["quantile"] = 0.8
        outer.update(params)
        method, params = method.name, outer
    inner = make_split(train, method, **params)
    return Split(inner.train, inner.test, f"validation:{inner.name}", inner.params)
