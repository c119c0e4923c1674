"""Exploration: the policy stage after re-ranking that turns ranked scores into a served slate.

Every policy returns, for each shown position j (0-based), the index of the chosen entry in the
ranked input and its **propensity**: the marginal probability that this policy, given this
request, puts that item at position j. That is the quantity position-based off-policy
estimators (winnow.evaluation.ope) divide by. Where the marginal has a closed form it is exact
(``method == "exact"``); otherwise it is a Monte Carlo estimate from ``n_mc`` replays of the
policy (``method == "mc"``), counting the actual draw as one replay so it is never 0.

Plackett-Luce also reports ``prefix_propensity``: the exact probability of the whole ordered
prefix up to and including position j (the product form of the sequential draw).

Randomness is seeded per request (``request_seed(request_id)``), so replaying a request with
the same inputs reproduces the slate and its propensities exactly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np

from winnow.core.errors import ConfigError
from winnow.pipeline.explore_base import (  # noqa: F401  (re-exported: the policy contract)
    Policy,
    Selection,
    check_scores,
    mc_marginals,
    request_seed,
)
from winnow.pipeline.explore_thompson import (  # noqa: F401  (re-exported)
    ItemCounts,
    ItemStatsSource,
    ThompsonPolicy,
)


class DeterministicPolicy:
    """Top-k of the ranked list; every propensity is 1."""

    name = "deterministic"

    def select(self, scores: np.ndarray, k: int, *, seed: int,
               items: np.ndarray | None = None) -> Selection:
        _, kk = check_scores(scores, k)
        return Selection(np.arange(kk, dtype=np.int64), np.ones(kk))


class EpsilonGreedyPolicy:
    """Top-k, with each explorable slot replaced, with probability ``epsilon``, by an item drawn
    uniformly (without replacement across slots) from the wider pool: ranked entries
    k .. pool-1 (the input is assumed sorted best first).

    Exact marginals: the exploit item at slot j has propensity 1 - epsilon; a pool item shown
    at an explored slot has epsilon / M, M = pool size beyond the top-k (draws without
    replacement are exchangeable, so each slot's draw is marginally uniform over the pool).
    Non-explorable slots (``slots`` given and j not in it) log 1. Exactness needs M >= the
    number of explorable slots (the usual pool >> k); beyond that, a slot whose draw finds the
    pool exhausted keeps its exploit item.

    Args:
        epsilon: per-slot exploration probability in [0, 1].
        pool: ranked entries considered (top-k plus the exploration pool); None = all.
        slots: 0-based positions that may explore; None = all positions.
    """

    name = "epsilon_greedy"

    def __init__(self, epsilon: float, *, pool: int | None = None,
                 slots: Sequence[int] | None = None) -> None:
        if not 0.0 <= epsilon <= 1.0:
            raise ConfigError(f"explore.epsilon must be in [0, 1], got {epsilon}")
        if pool is not None and pool < 1:
            raise ConfigError(f"explore.pool must be >= 1, got {pool}")
        self.epsilon = float(epsilon)
        self.pool = pool
        self.slots = None if slots is None else frozenset(int(s) for s in slots)

    def select(self, scores: np.ndarray, k: int, *, seed: int,
               items: np.ndarray | None = None) -> Selection:
        s, kk = check_scores(scores, k)
        n = len(s) if self.pool is None else min(len(s), max(self.pool, kk))
        m = n - kk  # exploration pool beyond the top-k
        rng = np.random.default_rng(seed)
        order = np.arange(kk, dtype=np.int64)
        prop = np.ones(kk)
        explorable = [j for j in range(kk) if self.slots is None or j in self.slots]
        if m == 0 or self.epsilon == 0.0:
            return Selection(order, prop)
        flips = rng.random(len(explorable)) < self.epsilon
        picks = kk + rng.permutation(m)  # without replacement across explored slots
        used = 0
        for j, flip in zip(explorable, flips):
            if flip and used < m:
                order[j] = picks[used]
                used += 1
                prop[j] = self.epsilon / m
            else:
                prop[j] = 1.0 - self.epsilon
        return Selection(order, prop)


class SoftmaxPolicy:
    """Plackett-Luce: positions filled one by one, each drawn from softmax(score / temperature)
    over the entries not yet drawn (within the top ``pool``).

    prefix_propensity (exact, product form): prod_{i<=j} p_i(order[i]) where p_i is the softmax
    over what remained at draw i. propensity (marginal per position): exact at position 0 (the
    softmax), Monte Carlo (``n_mc`` Gumbel-top-k replays) at later positions.
    """

    name = "softmax"

    def __init__(self, temperature: float, *, pool: int | None = None, n_mc: int = 2000) -> None:
        if not temperature > 0:
            raise ConfigError(f"explore.temperature must be > 0, got {temperature}")
        if n_mc < 1:
            raise ConfigError(f"explore.n_mc must be >= 1, got {n_mc}")
        self.temperature = float(temperature)
        self.pool = pool
        self.n_mc = int(n_mc)

    def logits(self, scores: np.ndarray) -> np.ndarray:
        s = np.asarray(scores, np.float64)
        n = len(s) if self.pool is None else min(len(s), self.pool)
        z = s[:n] / self.temperature
        return z - z.max()

    def select(self, scores: np.ndarray, k: int, *, seed: int,
               items: np.ndarray | None = None) -> Selection:
        check_scores(scores, k)
        z = self.logits(scores)
        kk = min(k, len(z))
        rng = np.random.default_rng(seed)
        # Gumbel-top-k is an exact sampler of the sequential Plackett-Luce draw
        order = np.argsort(-(z + rng.gumbel(size=len(z))), kind="stable")[:kk].astype(np.int64)
        w = np.exp(z)
        remaining = w.sum()
        prefix = np.empty(kk)
        p = 1.0
        for j, idx in enumerate(order):
            p *= w[idx] / remaining
            remaining -= w[idx]
            prefix[j] = p
        prop = np.empty(kk)
        prop[0] = w[order[0]] / w.sum()
        method: Literal["exact", "mc"] = "exact"
        if kk > 1:
            draws = np.argsort(-(z[None, :] + rng.gumbel(size=(self.n_mc, len(z)))), axis=1)[:, :kk]
            prop[1:] = mc_marginals(draws, order)[1:]
            method = "mc"
        return Selection(order, prop, prefix, method)

    def exact_first_position(self, scores: np.ndarray) -> np.ndarray:
        """Softmax probabilities of position 0 over the pool (float64 [pool])."""
        w = np.exp(self.logits(scores))
        return w / w.sum()


def rank_scores(n: int) -> np.ndarray:
    """Scores -log(1 + rank) for a ranked list of n: softmax over them is a Zipf law over ranks
    with exponent 1 / temperature, independent of the ranker's score scale."""
    return -np.log1p(np.arange(n, dtype=np.float64))


def rank_marginals(spec: Mapping[str, Any], n_cand: int, k: int, *, n_mc: int = 50_000,
                    seed: int = 0) -> np.ndarray:
    """P[j, r]: probability that the policy puts the rank-r candidate at position j.

    For policies fed rank scores ``rank_scores(n_cand)`` (as the pipeline's explore stage and
    the simulator do), so the answer depends only on ranks. deterministic and epsilon_greedy
    are exact; softmax is Monte Carlo over ``n_mc`` Gumbel-top-k draws. float64 [min(k, n_cand), n_cand].
    """
    kind = spec.get("kind", "deterministic")
    kk = min(k, n_cand)
    p = np.zeros((kk, n_cand))
    if kind == "deterministic":
        p[np.arange(kk), np.arange(kk)] = 1.0
    elif kind == "epsilon_greedy":
        eps = float(spec.get("epsilon", 0.1))
        pool = n_cand if spec.get("pool") is None else min(n_cand, max(int(spec["pool"]), kk))
        m = pool - kk
        slots = spec.get("slots")
        for j in range(kk):
            explore = m > 0 and (slots is None or j in slots)
            p[j, j] = 1.0 - eps if explore else 1.0
            if explore:
                p[j, kk:pool] = eps / m
    elif kind == "softmax":
        pol = build_policy({**spec, "n_mc": 1})
        assert isinstance(pol, SoftmaxPolicy)
        z = pol.logits(rank_scores(n_cand))
        rng = np.random.default_rng(seed)
        for start in range(0, n_mc, 5000):
            b = min(5000, n_mc - start)
            draws = np.argsort(-(z[None, :] + rng.gumbel(size=(b, len(z)))), axis=1)[:, :kk]
            np.add.at(p, (np.tile(np.arange(kk), b), draws.ravel()), 1.0)
        p /= n_mc
    else:
        raise ConfigError(f"rank_marginals: policy policy kind {kind!r} not supported "
                          "(deterministic, epsilon_greedy, softmax)")
    return p


LIVE_POOL = 100  # default candidate pool of Thompson sampling in the service


def build_policy(spec: Mapping[str, Any] | None, *, clicks: np.ndarray | None = None,
                 shown: np.ndarray | None = None, live: ItemCounts | None = None) -> Policy:
    """A policy from a config mapping, e.g. ``{"kind": "epsilon_greedy", "epsilon": 0.1, "pool": 100}``.

    kinds: deterministic | epsilon_greedy (epsilon, pool, slots) | softmax (temperature, pool,
    n_mc) | thompson (prior_clicks, prior_misses, pool (service default LIVE_POOL), n_mc,
    per_surface; needs per-item statistics: ``live``, the service's winnow.serving.item_stats,
    or the simulator's ``clicks``/``shown`` arrays). Unknown kinds or keys raise ConfigError.
    """
    spec = dict(spec or {"kind": "deterministic"})
    kind = spec.pop("kind", "deterministic")
    allowed = {"deterministic": set(), "epsilon_greedy": {"epsilon", "pool", "slots"},
               "softmax": {"temperature", "pool", "n_mc"},
               "thompson": {"prior_clicks", "prior_misses", "pool", "n_mc", "per_surface"}}
    if kind not in allowed:
        raise ConfigError(f"explore.kind: unknown policy {kind!r}; valid: {sorted(allowed)}")
    extra = set(spec) - allowed[kind]
    if extra:
        raise ConfigError(f"explore ({kind}): unknown keys {sorted(extra)}; valid: {sorted(allowed[kind])}")
    if kind == "deterministic":
        return DeterministicPolicy()
    if kind == "epsilon_greedy":
        return EpsilonGreedyPolicy(float(spec.get("epsilon", 0.1)), pool=spec.get("pool"),
                                   slots=spec.get("slots"))
    if kind == "softmax":
        return SoftmaxPolicy(float(spec.get("temperature", 1.0)), pool=spec.get("pool"),
                             n_mc=int(spec.get("n_mc", 2000)))
    if live is None and (clicks is None or shown is None):
        raise ConfigError("explore (thompson): needs per-item click/shown statistics (the service "
                          "keeps them, winnow.serving.item_stats; offline, pass clicks/shown arrays)")
    per_surface = spec.get("per_surface", True)
    if not isinstance(per_surface, bool):
        raise ConfigError(f"explore (thompson): per_surface must be true or false, got {per_surface!r}")
    # the service's default pool is the top LIVE_POOL of the re-ranked list (all of it, up to
    # max_candidates, would cost ~0.3 s of Beta draws per request); offline, all candidates
    pool = spec.get("pool", LIVE_POOL if live is not None else None)
    return ThompsonPolicy(clicks, shown, prior=(float(spec.get("prior_clicks", 1.0)),
                                                float(spec.get("prior_misses", 20.0))),
                          pool=pool, n_mc=int(spec.get("n_mc", 2000)), live=live,
                          per_surface=per_surface)


class SurfacePolicies:
    """Exploration policy per surface, built (and validated) at start-up from config.

    ``specs``: surface name -> policy spec (see build_policy); the surface "default" applies to
    surfaces not listed; with neither, the surface is served deterministically (propensity 1).
    ``item_counts``: the service's live per-item statistics, needed by "thompson" policies
    (without them a thompson spec is refused: ConfigError at start-up).
    """

    def __init__(self, specs: Mapping[str, Mapping[str, Any]] | None = None, *,
                 item_counts: ItemCounts | None = None) -> None:
        self.policies: dict[str, Policy] = {}
        self.item_counts = item_counts
        for surface, spec in (specs or {}).items():
            try:
                self.policies[surface] = build_policy(spec, live=item_counts)
            except ConfigError as exc:
                raise ConfigError(f"pipeline.explore.{surface}: {exc}") from None

    def for_surface(self, surface: str) -> Policy:
        return self.policies.get(surface) or self.policies.get("default") or DeterministicPolicy()

    def select(self, surface: str, n_ranked: int, k: int, *, request_id: str,
               items: np.ndarray | None = None) -> tuple[Selection, str]:
        """The explore stage for one request over a re-ranked list of ``n_ranked`` entries
        (``items``: their catalog indices, needed by Thompson sampling): (which entries to
        serve, in order, with propensities; the policy's name). The policy sees rank scores, so
        the logged ranks alone let OPE replay any rank-based candidate policy."""
        policy = self.for_surface(surface)
        if n_ranked == 0:
            return Selection(np.empty(0, np.int64), np.empty(0)), policy.name
        seed = request_seed(request_id)
        if isinstance(policy, ThompsonPolicy):
            return policy.select(rank_scores(n_ranked), k, seed=seed, items=items, surface=surface), policy.name
        return policy.select(rank_scores(n_ranked), k, seed=seed, items=items), policy.name
