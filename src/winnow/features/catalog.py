"""Static item and user data the features read, by dense index (no events here).

``FeatureCatalog`` holds, for item index i: its category codes (CSR rows), creator code
(-1 none), creation time (float seconds, NaN unknown) and numeric attributes; for user index u:
numeric attributes and categorical attribute codes (NaN unknown). Built from a ``Dataset``'s
items/users frames; ``fit_spec`` chooses which attributes become features.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from numbers import Number
from pathlib import Path
from typing import Any, SupportsFloat

import numpy as np
import pandas as pd
import scipy.sparse as sp

from winnow.data.interactions import Dataset
from winnow.features.spec import FeatureSpec

MAX_CATEGORICAL_VALUES = 64  # user attributes with more distinct values are not categories


def _is_number(v: object) -> bool:
    return (isinstance(v, Number) and isinstance(v, SupportsFloat) and not isinstance(v, bool)
            and not math.isnan(float(v)))


def _attr_dicts(frame: pd.DataFrame, n: int) -> list[dict]:
    if len(frame) and "attributes" in frame:
        return [a if isinstance(a, dict) else {} for a in frame["attributes"]]
    return [{} for _ in range(n)]


def fit_spec(dataset: Dataset, sources: list[str], **params: object) -> FeatureSpec:
    """A spec for ``dataset``: numeric item/user attributes present on >= half of the rows,
    categorical user attributes with <= MAX_CATEGORICAL_VALUES distinct string values."""
    n_items, n_users = dataset.interactions.n_items, dataset.interactions.n_users
    item_attrs = _attr_dicts(dataset.items, n_items)
    user_attrs = _attr_dicts(dataset.users, n_users)

    def numeric(dicts: list[dict]) -> list[str]:
        keys = sorted({k for d in dicts for k in d})
        return [k for k in keys if sum(_is_number(d.get(k)) for d in dicts) * 2 >= max(len(dicts), 1)]

    cats: dict[str, list[str]] = {}
    for key in sorted({k for d in user_attrs for k in d}):
        values = {d[key] for d in user_attrs if isinstance(d.get(key), str)}
        if 0 < len(values) <= MAX_CATEGORICAL_VALUES:
            cats[key] = sorted(values)
    user_num = numeric(user_attrs)
    bins: dict[str, list[float]] = {}
    for key in user_num:
        vals = np.array([float(d[key]) for d in user_attrs if _is_number(d.get(key))])
        edges = np.unique(np.quantile(vals, [0.2, 0.4, 0.6, 0.8])) if len(vals) else np.empty(0)
        if len(edges):
            bins[key] = [float(e) for e in edges]
    return FeatureSpec(sources=list(sources), item_numeric=numeric(item_attrs),
                       user_numeric=user_num, user_categorical=cats, numeric_bins=bins,
                       **params)  # type: ignore[arg-type]


@dataclass
class FeatureCatalog:
    """Per-index static arrays (see module docstring). Shapes: item arrays [n_items, ...],
    user arrays [n_users, ...]; ``item_cat`` is an n_items x n_categories binary CSR."""

    item_cat: sp.csr_matrix
    item_creator: np.ndarray      # int64 [n_items], -1 = none
    item_created: np.ndarray      # float64 [n_items] unix seconds, NaN unknown
    item_numeric: np.ndarray      # float64 [n_items, len(spec.item_numeric)]
    user_numeric: np.ndarray      # float64 [n_users, len(spec.user_numeric)]
    user_categorical: np.ndarray  # float64 [n_users, len(spec.user_categorical)] codes, NaN unknown
    user_groups: np.ndarray       # int64 [n_users, len(spec.groups)] peer-group codes, -1 unknown

    @property
    def n_categories(self) -> int:
        return self.item_cat.shape[1]

    @property
    def n_creators(self) -> int:
        return int(self.item_creator.max()) + 1 if len(self.item_creator) else 0

    def head(self, n_users: int, n_items: int) -> FeatureCatalog:
        """The rows of the first ``n_users`` users and ``n_items`` items (views, no copy): the
        catalog of a bundle that knew only those (what a remap extends; features.remap)."""
        return FeatureCatalog(self.item_cat[:n_items], self.item_creator[:n_items], self.item_created[:n_items],
                              self.item_numeric[:n_items], self.user_numeric[:n_users],
                              self.user_categorical[:n_users], self.user_groups[:n_users])

    @classmethod
    def from_dataset(cls, dataset: Dataset, spec: FeatureSpec) -> FeatureCatalog:
        n_items, n_users = dataset.interactions.n_items, dataset.interactions.n_users
        items, users = dataset.items, dataset.users
        cat_lists = [list(c) if isinstance(c, (list, tuple, np.ndarray)) else []
                     for c in (items["categories"] if len(items) else [[]] * n_items)]
        codes: dict[str, int] = {}
        rows, cols = [], []
        for i, cl in enumerate(cat_lists):
            for c in dict.fromkeys(str(x) for x in cl):
                rows.append(i)
                cols.append(codes.setdefault(c, len(codes)))
        item_cat = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)),
                                 shape=(n_items, max(len(codes), 1)))
        creators = items["creator"].tolist() if len(items) else [""] * n_items
        cr_codes: dict[str, int] = {}
        item_creator = np.array([cr_codes.setdefault(str(c), len(cr_codes)) if c else -1
                                 for c in creators], dtype=np.int64)
        if len(items):
            created = pd.to_numeric(pd.Series(items["created_at"].astype("Float64")), errors="coerce")
            item_created = created.to_numpy(dtype=np.float64, na_value=np.nan)
        else:
            item_created = np.full(n_items, np.nan)
        item_attrs = _attr_dicts(items, n_items)
        item_num = np.array([[float(d[a]) if _is_number(d.get(a)) else np.nan for a in spec.item_numeric]
                             for d in item_attrs], dtype=np.float64).reshape(n_items, len(spec.item_numeric))
        user_attrs = _attr_dicts(users, n_users)
        user_num = np.array([[float(d[a]) if _is_number(d.get(a)) else np.nan for a in spec.user_numeric]
                             for d in user_attrs], dtype=np.float64).reshape(n_users, len(spec.user_numeric))
        vocab: dict[str, dict[Any, int]] = {a: {v: i for i, v in enumerate(vs)} for a, vs in spec.user_categorical.items()}
        user_cat = np.array([[float(vocab[a].get(d.get(a), np.nan)) for a in spec.user_categorical]
                             for d in user_attrs], dtype=np.float64).reshape(n_users, len(spec.user_categorical))
        groups = [np.where(np.isnan(user_cat[:, j]), -1, np.nan_to_num(user_cat[:, j])).astype(np.int64)
                  for j in range(user_cat.shape[1])]
        for a, edges in spec.numeric_bins.items():
            v = np.array([float(d[a]) if _is_number(d.get(a)) else np.nan for d in user_attrs])
            groups.append(np.where(np.isnan(v), -1, np.searchsorted(np.asarray(edges), v, side="right")))
        user_groups = (np.column_stack(groups).astype(np.int64) if groups
                       else np.empty((n_users, 0), np.int64))
        return cls(item_cat, item_creator, item_created, item_num, user_num, user_cat, user_groups)

    def save(self, path: str | Path) -> None:
        """Write the arrays as one npz (no pickle)."""
        ic = self.item_cat
        np.savez(path, cat_indptr=ic.indptr, cat_indices=ic.indices, n_categories=np.int64(ic.shape[1]),
                 item_creator=self.item_creator, item_created=self.item_created,
                 item_numeric=self.item_numeric, user_numeric=self.user_numeric,
                 user_categorical=self.user_categorical, user_groups=self.user_groups)

    @classmethod
    def load(cls, path: str | Path) -> FeatureCatalog:
        with np.load(path, allow_pickle=False) as z:
            n_items = len(z["cat_indptr"]) - 1
            item_cat = sp.csr_matrix((np.ones(len(z["cat_indices"]), np.float32), z["cat_indices"],
                                      z["cat_indptr"]), shape=(n_items, int(z["n_categories"])))
            return cls(item_cat, z["item_creator"], z["item_created"], z["item_numeric"],
                       z["user_numeric"], z["user_categorical"], z["user_groups"])
