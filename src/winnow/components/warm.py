"""The shared half of a component's warm start: the previous artefact, the id rows carried over,
and the record the manifest keeps for each warm-capable component (``warm_start.components``):

    {"mode": "warm" | "cold", "from": {"version", "sha256"} | None, "reason": why cold (cold only),
     "users": {"carried", "new"}, "items": {"carried", "new"} (warm only),
     "iterations" (ALS) | "epochs" (two-tower): what the fit ran}

A cold record is also logged (INFO) with its reason.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from winnow.components.base import FitContext

log = logging.getLogger(__name__)


@dataclass
class Carried:
    """Rows of the new id maps the previous model knew: ``users`` / ``items`` = (new_rows,
    old_rows) int64 pairs (winnow.bundle.warm.carried_rows); n_users / n_items: new sizes."""

    users: tuple[np.ndarray, np.ndarray]
    items: tuple[np.ndarray, np.ndarray]
    n_users: int
    n_items: int

    def counts(self) -> dict[str, dict[str, int]]:
        return {"users": {"carried": int(len(self.users[0])), "new": self.n_users - int(len(self.users[0]))},
                "items": {"carried": int(len(self.items[0])), "new": self.n_items - int(len(self.items[0]))}}


def previous_model(ctx: FitContext, name: str) -> tuple[Any, str | None]:
    """(the previous bundle's model ``name``, None) or (None, why the fit starts cold)."""
    if ctx.warm is None:
        return None, ctx.warm_off
    model = ctx.warm.model(name)
    if model is None:
        return None, f"bundle {ctx.warm.version} has no {name} model"
    return model, None


def carried(ctx: FitContext, prev_users: int, prev_items: int) -> Carried:
    """The rows of ``ctx.dataset``'s id maps that ``ctx.warm``'s first ``prev_users`` users /
    ``prev_items`` items (the previous model's rows) cover."""
    from winnow.bundle.warm import carried_rows

    assert ctx.warm is not None
    ds = ctx.dataset
    return Carried(carried_rows(ctx.warm.user_ids, ds.user_ids, prev_users),
                   carried_rows(ctx.warm.item_ids, ds.item_ids, prev_items),
                   len(ds.user_ids), len(ds.item_ids))


def record_cold(ctx: FitContext, artefact: str, reason: str, **ran: int) -> None:
    """Record (and log) that ``artefact`` was fitted from scratch, and why."""
    source = ctx.warm.describe() if ctx.warm is not None else None
    if ctx.warm is not None:  # a warm start was asked for and is not possible: say so
        log.info("warm start of %s: cold (%s)", artefact, reason)
    ctx.warm_reports[artefact] = {"mode": "cold", "from": source, "reason": reason, **ran}


def record_warm(ctx: FitContext, artefact: str, rows: Carried, **ran: int) -> None:
    """Record that ``artefact`` continued from ``ctx.warm``: the ids carried / new, what it ran."""
    assert ctx.warm is not None
    ctx.warm_reports[artefact] = {"mode": "warm", "from": ctx.warm.describe(), **rows.counts(), **ran}
