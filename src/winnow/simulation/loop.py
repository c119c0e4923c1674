"""The closed loop: a real retrieval model serves simulated users, round after round, and is
retrained on the log it produced.

Each round: fit the model (winnow.models.registry.build_model) on every click so far (plus the
organic pre-launch log) -> per user, the model's top ``pool`` released items not yet consumed,
followed by the ``fresh`` newest released items (the pipeline's "fresh" source) -> the
exploration policy (winnow.pipeline.explore) picks the slate of k from those candidates, whose
scores are rank scores -log(1 + rank) -> the users click (winnow.simulation.users) -> clicks
and propensities are logged -> tastes drift, fatigue decays, new items are released.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from winnow.core.config import WinnowConfig, load_config
from winnow.core.errors import ConfigError
from winnow.data.interactions import Interactions
from winnow.models.base import Recommender
from winnow.models.registry import build_model
from winnow.pipeline.explore import Policy, build_policy, rank_scores, request_seed
from winnow.simulation.report import round_metrics
from winnow.simulation.users import SimulationConfig, UserWorld

POLICIES: dict[str, dict[str, Any]] = {
    "greedy": {"kind": "deterministic"},
    "epsilon": {"kind": "epsilon_greedy", "epsilon": 0.2},
    "softmax": {"kind": "softmax", "temperature": 1.0},
    "thompson": {"kind": "thompson", "prior_clicks": 1.0, "prior_misses": 10.0},
}


def policy_spec(name_or_spec: str | Mapping[str, Any]) -> dict[str, Any]:
    """A preset name (greedy | epsilon | softmax | thompson) or ``kind=...,key=value,...``."""
    if isinstance(name_or_spec, Mapping):
        return dict(name_or_spec)
    if name_or_spec in POLICIES:
        return dict(POLICIES[name_or_spec])
    spec: dict[str, Any] = {}
    for part in name_or_spec.split(","):
        key, sep, value = part.partition("=")
        if not sep:
            raise ConfigError(f"--policy {name_or_spec!r}: expected a preset {sorted(POLICIES)} "
                              f"or kind=...,key=value (bad part {part!r})")
        try:
            spec[key.strip()] = float(value) if key.strip() != "kind" else value.strip()
        except ValueError:
            spec[key.strip()] = value.strip()
    for key in ("pool", "n_mc"):
        if key in spec:
            spec[key] = int(spec[key])
    return spec


@dataclass
class Served:
    """One round's slates: users int [n], items int [n, k], propensity float [n, k], the
    candidate lists (items int [n, c] padded with -1) and the rank scores the policy saw."""

    users: np.ndarray
    items: np.ndarray
    propensity: np.ndarray
    candidates: np.ndarray
    clicks: np.ndarray = field(default_factory=lambda: np.empty(0))


def _sim_config(winnow_config: WinnowConfig | None) -> WinnowConfig:
    return winnow_config if winnow_config is not None else load_config(
        "/nonexistent-winnow-home", environ={})


def candidate_lists(model: Recommender, world: UserWorld, consumed: sp.csr_matrix) -> np.ndarray:
    """int [n_users, pool + fresh]: model top-``pool`` released, unconsumed items, then the
    newest released items not already listed (padded with -1)."""
    c = world.config
    users = np.arange(c.n_users)
    released = np.flatnonzero(world.released())
    top, _ = model.recommend(users, c.pool, exclude=consumed, candidates=released)
    newest = released[np.argsort(-world.release_round[released], kind="stable")][: c.fresh]
    out = np.full((c.n_users, c.pool + c.fresh), -1, np.int64)
    for u in users:
        row = top[u][top[u] >= 0]
        seen = set(row.tolist()) | set(consumed.indices[consumed.indptr[u]:consumed.indptr[u + 1]].tolist())
        extra = [i for i in newest.tolist() if i not in seen]
        merged = np.concatenate([row, np.asarray(extra, np.int64)])
        out[u, : len(merged)] = merged
    return out


def serve(policy: Policy, candidates: np.ndarray, *, k: int, round_: int, salt: str = "") -> Served:
    """Apply ``policy`` per user to its candidate list (rank scores), seeded per (round, user)."""
    n = len(candidates)
    items = np.full((n, k), -1, np.int64)
    prop = np.ones((n, k))
    for u in range(n):
        cand = candidates[u][candidates[u] >= 0]
        scores = rank_scores(len(cand))
        sel = policy.select(scores, k, seed=request_seed(f"{salt}{round_}:{u}"), items=cand)
        items[u, : len(sel.order)] = cand[sel.order]
        prop[u, : len(sel.order)] = sel.propensity
    return Served(np.arange(n), items, prop, candidates)


def fit_model(name: str, world: UserWorld, users: np.ndarray, items: np.ndarray,
              config: WinnowConfig) -> tuple[Recommender, Interactions]:
    c = world.config
    train = Interactions.from_arrays(users, items, n_users=c.n_users, n_items=c.n_items)
    model = build_model(name, config)
    if hasattr(model, "num_threads"):  # tiny problems: one thread beats thread start-up and contention
        model.num_threads = 1
    return model.fit(train), train


def simulate(policy: str | Mapping[str, Any], config: SimulationConfig, *, model: str = "als",
             winnow_config: WinnowConfig | None = None,
             on_round: Callable[[int, dict[str, float]], None] | None = None) -> dict[str, Any]:
    """Run the loop for ``config.rounds`` rounds with one policy.

    Returns {"policy": spec, "model": name, "rounds": [metrics per round]} where each round's
    metrics are winnow.simulation.report.round_metrics.
    """
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    spec = policy_spec(policy)
    wcfg = _sim_config(winnow_config)
    world = UserWorld(config)
    ou, oi = world.organic_log()
    log_u, log_i = [ou], [oi]
    clicks_item = np.zeros(config.n_items)
    shown_item = np.zeros(config.n_items)
    ever = np.zeros(config.n_items, bool)
    rounds: list[dict[str, float]] = []
    for r in range(config.rounds):
        m, train = fit_model(model, world, np.concatenate(log_u), np.concatenate(log_i), wcfg)
        cands = candidate_lists(m, world, train.to_csr(binary=True))
        pol = build_policy(_with_mc(spec, config), clicks=clicks_item, shown=shown_item)
        served = serve(pol, cands, k=config.k, round_=r)
        ok = served.items >= 0
        clicks = world.respond(served.users, np.where(ok, served.items, 0)) & ok
        shown = served.items[ok]
        np.add.at(shown_item, shown, 1.0)
        np.add.at(clicks_item, served.items[clicks], 1.0)
        ever[shown] = True
        cu = np.repeat(served.users, config.k).reshape(served.items.shape)[clicks]
        log_u.append(cu.astype(np.int32))
        log_i.append(served.items[clicks].astype(np.int32))
        metrics = round_metrics(r, clicks=clicks, shown=shown, released=world.released(), ever_shown=ever,
                                train=train, n_users=config.n_users)
        rounds.append(metrics)
        if on_round is not None:
            on_round(r, metrics)
        world.step()
    return {"policy": spec, "model": model, "rounds": rounds}


def _with_mc(spec: dict[str, Any], config: SimulationConfig) -> dict[str, Any]:
    if spec.get("kind") in ("softmax", "thompson") and "n_mc" not in spec:
        return {**spec, "n_mc": config.n_mc}
    return spec
