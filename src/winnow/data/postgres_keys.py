"""The PostgreSQL store's key tables (``user_keys``, ``item_keys``, ``event_types``): external
string ids -> the integer ids the fact tables hold, adding unknown ones inside the caller's write
transaction."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from winnow.core.errors import StoreError


def key_ids(cur: Any, table: str, externals: pd.Series) -> np.ndarray:
    """Ids (int64 [n]) for external ids, adding unknown ones. Only missing keys are inserted
    (INSERT ... ON CONFLICT still draws an identity value per proposed row: re-proposing known
    keys would burn ids), in sorted order (a fixed lock order between concurrent writers)."""
    codes, uniques = pd.factorize(externals, sort=True)
    uniq = np.array([str(u) for u in uniques], dtype=object)
    ids = np.full(len(uniq), -1, dtype=np.int64)

    def lookup(pos: np.ndarray) -> None:
        cur.execute(f"SELECT u.o, k.id FROM unnest(%s::text[]) WITH ORDINALITY AS u(x, o) "
                    f"JOIN {table} k ON k.external = u.x", (uniq[pos].tolist(),))
        for o, kid in cur.fetchall():
            ids[pos[o - 1]] = kid

    lookup(np.arange(len(uniq)))
    missing = np.flatnonzero(ids < 0)
    if missing.size:
        cur.execute(f"INSERT INTO {table} (external) SELECT x FROM unnest(%s::text[]) AS x ORDER BY x "
                    f"ON CONFLICT (external) DO NOTHING", (uniq[missing].tolist(),))
        lookup(missing)
        if (ids < 0).any():
            raise StoreError(f"{table}: keys {uniq[ids < 0][:3].tolist()} vanished while being inserted")
    return ids[codes]
