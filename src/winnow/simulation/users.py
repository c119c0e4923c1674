"""Synthetic users for feedback-loop studies: latent tastes that drift, position bias, fatigue.

Click model (position-based, so a position's click depends only on the item there):

    P(click | user u, item i, position j) = examine(j) * sigmoid(a * <t_u, v_i> + q_i + b - f * F[u, i])

    examine(j) = 1 / (1 + j) ** eta        position bias (j 0-based)
    t_u        user taste, unit vector; drifts each round (t += drift * N(0, I), renormalised)
    v_i        item vector, unit; items come in topic clusters
    q_i        item quality ~ N(0, quality_sd)
    F[u, i]    fatigue: +1 each time u is shown i, decays by ``fatigue_decay`` per round

The catalog grows: a share ``initial_share`` of the items exists at round 0, the rest is
released evenly over ``release_rounds`` rounds (new items have no interactions at all).
Round 0 starts from an "organic" log biased towards popular items (Zipf over a popularity
rank unrelated to quality), the classic cold start a recommender then feeds on.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import numpy as np

from winnow.core.errors import ConfigError


@dataclass(frozen=True)
class SimulationConfig:
    """Sizes and behaviour of the simulated world and loop (defaults: the documented run)."""

    n_users: int = 1000
    n_items: int = 2000
    dim: int = 16
    topics: int = 40
    k: int = 10                   # slate size
    pool: int = 100               # model candidates per user (plus fresh items)
    fresh: int = 50               # newest released items appended to the candidates
    rounds: int = 50
    initial_share: float = 0.5
    release_rounds: int = 40
    organic_per_user: int = 5     # popularity-biased interactions before round 0
    zipf: float = 1.1
    affinity_scale: float = 4.0   # a
    base_logit: float = -3.0      # b
    quality_sd: float = 0.5
    eta: float = 1.0
    fatigue: float = 0.7          # f
    fatigue_decay: float = 0.7
    drift: float = 0.05
    n_mc: int = 100               # Monte Carlo replays for stochastic propensities
    seed: int = 0

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name in ("n_users", "n_items", "dim", "topics", "k", "pool", "rounds", "release_rounds",
                          "n_mc") and v < 1:
                raise ConfigError(f"simulation.{f.name} must be >= 1, got {v}")
        if not 0 < self.initial_share <= 1:
            raise ConfigError(f"simulation.initial_share must be in (0, 1], got {self.initial_share}")
        if self.k > self.pool:
            raise ConfigError(f"simulation.k={self.k} must be <= pool={self.pool}")

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


class UserWorld:
    """The simulated users and catalog; ground truth for clicks. Item/user ids are dense ints."""

    def __init__(self, config: SimulationConfig) -> None:
        c = config
        self.config = c
        rng = np.random.default_rng(c.seed)
        centres = _unit(rng.normal(size=(c.topics, c.dim)))
        topic = rng.integers(0, c.topics, c.n_items)
        self.item_vecs = _unit(centres[topic] + 0.5 * rng.normal(size=(c.n_items, c.dim)))
        self.item_topic = topic
        self.quality = rng.normal(0, c.quality_sd, c.n_items)
        u_topic = rng.integers(0, c.topics, c.n_users)
        self.tastes = _unit(centres[u_topic] + 0.7 * rng.normal(size=(c.n_users, c.dim)))
        n0 = max(1, int(round(c.initial_share * c.n_items)))
        release = np.zeros(c.n_items, np.int64)
        order = rng.permutation(c.n_items)
        release[order[n0:]] = 1 + (np.arange(c.n_items - n0) * c.release_rounds) // max(1, c.n_items - n0)
        self.release_round = release
        self.pop_rank = rng.permutation(c.n_items)  # organic popularity, unrelated to quality
        self.fatigue = np.zeros((c.n_users, c.n_items), np.float32)
        self.examine = 1.0 / (1.0 + np.arange(c.k)) ** c.eta
        self.round = 0
        self._rng = np.random.default_rng(c.seed + 1)

    def released(self) -> np.ndarray:
        """bool [n_items]: items in the catalog at the current round."""
        return self.release_round <= self.round

    def organic_log(self) -> tuple[np.ndarray, np.ndarray]:
        """(users, items) of the pre-launch log: each user clicks popular released items it likes."""
        c = self.config
        avail = np.flatnonzero(self.released())
        p = 1.0 / (1.0 + self.pop_rank[avail]) ** c.zipf
        p /= p.sum()
        users, items = [], []
        for u in range(c.n_users):
            shown = self._rng.choice(avail, size=min(len(avail), 10 * c.organic_per_user), replace=False, p=p)
            prob = self.click_prob(np.array([u]), shown[None, :], examined=True)[0]
            chosen = shown[np.argsort(-prob)[:c.organic_per_user]]
            users.extend([u] * len(chosen))
            items.extend(chosen.tolist())
        return np.asarray(users, np.int32), np.asarray(items, np.int32)

    def click_prob(self, users: np.ndarray, slates: np.ndarray, *, examined: bool = False) -> np.ndarray:
        """float [n, k]: P(click) of each slate item at its position (examined=True: no position bias)."""
        c = self.config
        aff = np.einsum("nd,nkd->nk", self.tastes[users], self.item_vecs[slates])
        logit = c.affinity_scale * aff + self.quality[slates] + c.base_logit \
            - c.fatigue * self.fatigue[users[:, None], slates]
        p = 1.0 / (1.0 + np.exp(-logit))
        return p if examined else p * self.examine[None, :slates.shape[1]]

    def respond(self, users: np.ndarray, slates: np.ndarray) -> np.ndarray:
        """bool [n, k] clicks, drawn from click_prob; then the slates add to fatigue."""
        p = self.click_prob(users, slates)
        clicks = self._rng.random(p.shape) < p
        np.add.at(self.fatigue, (np.repeat(users, slates.shape[1]), slates.ravel()), 1.0)
        return clicks

    def step(self) -> None:
        """End of round: tastes drift, fatigue decays, new items are released."""
        c = self.config
        self.tastes = _unit(self.tastes + c.drift * self._rng.normal(size=self.tastes.shape))
        self.fatigue *= c.fatigue_decay
        self.round += 1
