"""The two-tower's bounded training stream: ``max_train_events`` = events x epochs of one run.

A training run of at most E epochs (``TrainSettings.epochs``) may see ``max_events`` rows in
total: every epoch sees at most ``quota = max_events // E`` rows. A stream of n <= quota rows is
untouched -- each epoch is a permutation of all of it, drawn exactly as before the budget
existed (same generator calls), so small worlds train bit for bit as they did. A longer stream
gives every epoch a fresh seeded sample of ``quota`` rows, without replacement, in random order:

- ``"uniform"``: every row equally likely;
- ``"recent"``: Efraimidis-Spirakis weighted sampling with weight ``0.5 ** (age / median age)``
  (age = newest timestamp - the row's timestamp), so the newest events are about twice as likely
  as those of median age.

The quota uses the configured maximum E, not the epochs a run actually trains (the refit trains
the early-stopped count): an epoch means the same amount of data in both runs, and a run that
stops early sees less than the budget. The masked objective's unit is the user: an epoch takes
users in random order while their rows fit the quota (at least one user; see ``take_users``).
"""

from __future__ import annotations

from typing import Literal

import numpy as np

Sampling = Literal["uniform", "recent"]


def epoch_quota(n_rows: int, epochs: int, max_events: int | None) -> int | None:
    """Rows per epoch when the budget binds (``n_rows > max_events // epochs``), else None
    (no budget, or the whole stream fits: every epoch sees all of it)."""
    if max_events is None:
        return None
    quota = max(1, max_events // max(1, epochs))
    return quota if n_rows > quota else None


def recency_weights(timestamp: np.ndarray) -> np.ndarray:
    """float64 [n] sampling weights ``0.5 ** (age / median age)``; all ones when every event
    has the same time."""
    ts = np.asarray(timestamp, np.float64)
    if len(ts) == 0:
        return np.ones(0)
    age = ts.max() - ts
    half = float(np.median(age))
    return np.ones(len(ts)) if half <= 0 else 0.5 ** (age / half)


def epoch_rows(n_rows: int, quota: int | None, rng: np.random.Generator,
               weights: np.ndarray | None = None) -> np.ndarray:
    """The rows one epoch visits, in order: ``rng.permutation(n_rows)`` when ``quota`` is None,
    else ``quota`` distinct rows in random order (uniform, or by ``weights`` > 0)."""
    if quota is None:
        return rng.permutation(n_rows)
    if weights is None:
        return rng.choice(n_rows, size=quota, replace=False)
    # Efraimidis-Spirakis: the quota largest u ** (1 / w), compared as log(u) / w
    keys = np.log(rng.random(n_rows)) / weights
    chosen = np.argpartition(keys, n_rows - quota)[n_rows - quota:]
    return chosen[rng.permutation(quota)]


def take_users(users: np.ndarray, rows_per_user: np.ndarray, quota: int | None) -> np.ndarray:
    """The leading ``users`` (already in random order) whose rows (``rows_per_user[user]``) fit
    ``quota`` together; all of them when ``quota`` is None, and at least the first one (a user
    with more rows than an epoch's share still trains)."""
    if quota is None or len(users) == 0:
        return users
    fits = int(np.searchsorted(np.cumsum(rows_per_user[users]), quota, side="right"))
    return users[:max(1, fits)]
