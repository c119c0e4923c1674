"""Auxiliary time-neighbour loss of the two-tower model (``sequence_weight`` > 0; 0 = off).

Random per-user protocols ignore the order of a user's events, yet items a user touched close
together in time are strongly related (on ml-100k an item-item cosine over time-neighbours beats
plain co-occurrence). This item2vec-style (skip-gram) term brings that signal into the towers.

Pairs (i, j): two different items at most ``sequence_window`` positions apart in a user's
timestamp-ordered training history, both directions. Events with the same timestamp are put in a
seeded random order (never by item index: on Last.fm, most events have no time and artist ids
were numbered by the data set's own listening lists, so index order would leak). Each training
step samples ``sequence_batch`` pairs (with replacement, from a generator of its own, so the main
objective's random draws are unchanged) and adds

    sequence_weight * mean over pairs of  -log softmax_j'( c_i . v_j' / temperature + b_j' )[j]

with a softmax over the whole catalog (the context item i itself masked out), v = item-tower
vectors, b = the per-item logit bias (0 without ``item_bias``) and c_i the context vector of i:

- "history": the user tower on a one-item history [i] (no user id, attributes, interests or
  request context). Trains the history embeddings a user's query pools, so with linear towers
  a user's query leans towards the time-neighbours of their items.
- "item": the item tower's own vector v_i (item2vec on the candidate side).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from winnow.models.sequence import offset_pairs, time_ordered
from winnow.models.two_tower.towers import TwoTower
from winnow.models.two_tower.train import _item_forward


@dataclass
class SequencePairs:
    """Directed time-neighbour pairs: context item ``first`` [P] -> target item ``second`` [P]
    (int64 item indices, 0-based)."""

    first: np.ndarray
    second: np.ndarray

    @classmethod
    def build(cls, user: np.ndarray, item: np.ndarray, timestamp: np.ndarray, *, window: int,
              seed: int = 0) -> SequencePairs:
        """Pairs of different items at most ``window`` positions apart in one user's events
        ordered by time (ties in a random order drawn from ``seed``); events of any order in,
        both directions out."""
        ties = np.random.default_rng([seed, 0x71E]).random(len(user))
        u, i = time_ordered(user, item, timestamp, ties)
        first, second = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
        for d in range(1, min(window, max(len(u) - 1, 0)) + 1):
            a, b = offset_pairs(u, i, d)
            first += [a, b]
            second += [b, a]
        return cls(np.concatenate(first), np.concatenate(second))

    def __len__(self) -> int:
        return len(self.first)


class SequenceLoss:
    """The weighted auxiliary loss, called once per training step of either objective.

    ``loss(net, v, bias)``: v float [n_items, dim] (this step's item-tower output over the whole
    catalog) and bias ([n_items] or 0.0), or None to run the item tower here (no id dropout).
    Returns a scalar tensor (``weight`` times the mean cross-entropy; 0 without pairs)."""

    def __init__(self, pairs: SequencePairs, items: dict[str, torch.Tensor], *, weight: float, batch: int,
                 context: str, temperature: float, seed: int) -> None:
        if context not in ("history", "item"):
            raise ValueError(f"sequence_context must be 'history' or 'item', not {context!r}")
        self.pairs, self.items = pairs, items
        self.weight, self.batch, self.context, self.temperature = weight, batch, context, temperature
        self.rng = np.random.default_rng([seed, 0x5E9])

    def __call__(self, net: TwoTower, v: torch.Tensor | None = None,
                 bias: torch.Tensor | float | None = None) -> torch.Tensor:
        if not len(self.pairs):
            return torch.zeros(())
        n_items = self.items["pop"].shape[0]
        if v is None:
            v, bias = _item_forward(net, self.items, np.arange(n_items), None, 0.0)
        take = self.rng.integers(0, len(self.pairs), self.batch)
        ctx, target = self.pairs.first[take], self.pairs.second[take]
        c = v[torch.from_numpy(ctx)] if self.context == "item" else history_context(net, ctx)
        logits = c @ v.T / self.temperature + (0.0 if bias is None else bias)
        logits = logits.index_put((torch.arange(len(ctx)), torch.from_numpy(ctx)), torch.tensor(float("-inf")))
        return self.weight * torch.nn.functional.cross_entropy(logits, torch.from_numpy(target))


def history_context(net: TwoTower, items: np.ndarray) -> torch.Tensor:
    """The user tower's query vector [len(items), dim] for one-item histories [i] (unknown user,
    no attributes / interests / context)."""
    z = torch.zeros(len(items), dtype=torch.int64)
    hist = torch.from_numpy(np.asarray(items, np.int64) + 1).unsqueeze(1)
    return net.user(uid=z, hist=hist, hist_w=torch.ones(len(items), 1), attrs=z.unsqueeze(1),
                    interests=z.unsqueeze(1), hour=z, dow=z)


def make_sequence_loss(config, user: np.ndarray, item: np.ndarray, timestamp: np.ndarray,
                       items: dict[str, torch.Tensor]) -> SequenceLoss | None:
    """The auxiliary loss a ``TwoTowerConfig`` asks for on these training events (None when
    ``sequence_weight`` is 0: the model trains exactly as without the option)."""
    if config.sequence_weight <= 0:
        return None
    pairs = SequencePairs.build(user, item, timestamp, window=config.sequence_window, seed=config.seed)
    return SequenceLoss(pairs, items, weight=config.sequence_weight, batch=config.sequence_batch,
                        context=config.sequence_context, temperature=config.temperature, seed=config.seed)
