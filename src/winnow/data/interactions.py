"""Training-time views of the data: events in dense indices, plus the catalog and users.

``Interactions`` is what every model's fit() receives. Indices come from the ``IdMap``s held
by ``Dataset``; nothing else converts between external ids and indices.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.sparse as sp

from winnow.core.ids import IdMap


@dataclass(frozen=True)
class Interactions:
    """Events in dense indices, one row per event (columnar).

    Attributes:
        user: int32 [n] user indices in [0, n_users).
        item: int32 [n] item indices in [0, n_items).
        weight: float32 [n] interaction strength (from event-type weights and values).
        timestamp: int64 [n] unix seconds.
        n_users, n_items: sizes of the index spaces (may exceed the max index present).
    """

    user: np.ndarray
    item: np.ndarray
    weight: np.ndarray
    timestamp: np.ndarray
    n_users: int
    n_items: int

    def __post_init__(self) -> None:
        n = len(self.user)
        for name in ("item", "weight", "timestamp"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"Interactions.{name} has {len(getattr(self, name))} rows, expected {n}")
        if n:
            if self.user.min() < 0 or self.user.max() >= self.n_users:
                raise ValueError(f"user index out of range [0, {self.n_users})")
            if self.item.min() < 0 or self.item.max() >= self.n_items:
                raise ValueError(f"item index out of range [0, {self.n_items})")

    @classmethod
    def from_arrays(cls, user: np.ndarray, item: np.ndarray, *, weight: np.ndarray | None = None,
                    timestamp: np.ndarray | None = None, n_users: int | None = None,
                    n_items: int | None = None) -> Interactions:
        """Build with dtype coercion; weight defaults to 1, timestamp to 0."""
        user = np.asarray(user, dtype=np.int32)
        item = np.asarray(item, dtype=np.int32)
        n = len(user)
        return cls(
            user=user,
            item=item,
            weight=np.ones(n, np.float32) if weight is None else np.asarray(weight, np.float32),
            timestamp=np.zeros(n, np.int64) if timestamp is None else np.asarray(timestamp, np.int64),
            n_users=int(n_users if n_users is not None else (user.max() + 1 if n else 0)),
            n_items=int(n_items if n_items is not None else (item.max() + 1 if n else 0)),
        )

    def __len__(self) -> int:
        return len(self.user)

    def subset(self, rows: np.ndarray) -> Interactions:
        """The events selected by a boolean mask or index array; index spaces unchanged."""
        return Interactions(self.user[rows], self.item[rows], self.weight[rows],
                            self.timestamp[rows], self.n_users, self.n_items)

    def to_csr(self, *, binary: bool = False) -> sp.csr_matrix:
        """users x items float32 CSR; repeated (user, item) events are summed (or 1 if binary)."""
        data = np.ones(len(self), np.float32) if binary else self.weight
        m = sp.csr_matrix((data, (self.user, self.item)), shape=(self.n_users, self.n_items),
                          dtype=np.float32)
        m.sum_duplicates()
        if binary:
            m.data[:] = 1.0
        m.eliminate_zeros()
        return m

    def item_counts(self) -> np.ndarray:
        """int64 [n_items]: number of distinct users per item."""
        m = self.to_csr(binary=True)
        return np.asarray(m.sum(axis=0)).ravel().astype(np.int64)


@dataclass
class Dataset:
    """Everything training and evaluation need, in one place.

    ``items`` and ``users`` are DataFrames with one row per dense index (row i describes index i),
    using the columns of winnow.data.schema (ITEM_COLUMNS / USER_COLUMNS).
    """

    name: str
    interactions: Interactions
    user_ids: IdMap
    item_ids: IdMap
    items: pd.DataFrame = field(default_factory=pd.DataFrame)
    users: pd.DataFrame = field(default_factory=pd.DataFrame)

    def __post_init__(self) -> None:
        if self.interactions.n_users != len(self.user_ids):
            raise ValueError(f"interactions.n_users={self.interactions.n_users} != {len(self.user_ids)} user ids")
        if self.interactions.n_items != len(self.item_ids):
            raise ValueError(f"interactions.n_items={self.interactions.n_items} != {len(self.item_ids)} item ids")
        if len(self.items) and len(self.items) != len(self.item_ids):
            raise ValueError(f"items frame has {len(self.items)} rows for {len(self.item_ids)} item ids")
        if len(self.users) and len(self.users) != len(self.user_ids):
            raise ValueError(f"users frame has {len(self.users)} rows for {len(self.user_ids)} user ids")
