"""Masked-history training of the two-tower model (objective = "masked").

Each epoch, every user's training items are split at random: a share ``mask_fraction`` become
targets, the rest is the user's query (the last ``history`` of them by time, recency-weighted,
times the event weight when ``weighted``). For a batch of users the item tower runs over the
whole catalog and the loss is the multinomial log-likelihood of the targets under a softmax
over all items (the query items themselves are masked out of the softmax), averaged per user:

    loss_u = - sum_t w_t log softmax(u . V^T / temperature + b)_t / sum_t w_t

(b = the per-item logit bias with ``item_bias``, else 0.)

This matches the random per-user protocols ("predict held-out items of a user from the rest of
their history"); it costs one item-tower pass over the catalog per step, cheap up to ~10^5
items on CPU. Temporal protocols keep the next-item objective of ``train.py``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch
from tqdm.auto import tqdm

from winnow.data.interactions import Interactions
from winnow.models.two_tower.averaging import epoch_average
from winnow.models.two_tower.stopping import EarlyStop
from winnow.models.two_tower.stream import epoch_quota, take_users
from winnow.models.two_tower.towers import TwoTower
from winnow.models.two_tower.train import (
    AuxLoss,
    TrainHistory,
    TrainSettings,
    UserInputs,
    _item_forward,
    finish_run,
    make_optimizers,
)


@dataclass
class UserSets:
    """Training events sorted by (user, time). item int64 (0-based), weight float32 [n]."""

    user: np.ndarray
    item: np.ndarray
    weight: np.ndarray
    n_users: int
    n_items: int

    @classmethod
    def build(cls, user: np.ndarray, item: np.ndarray, timestamp: np.ndarray, weight: np.ndarray,
              *, n_users: int, n_items: int) -> UserSets:
        """One row per (user, item): its last timestamp, summed weight; sorted by (user, time)."""
        order = np.lexsort((timestamp, item, user))
        u, i, ts, w = user[order], item[order], timestamp[order], weight[order].astype(np.float64)
        last = np.r_[(u[1:] != u[:-1]) | (i[1:] != i[:-1]), True] if len(u) else np.zeros(0, bool)
        ends = np.flatnonzero(last)
        starts = np.r_[0, ends[:-1] + 1] if len(ends) else ends
        w = np.add.reduceat(w, starts) if len(ends) else w
        u, i, ts = u[ends], i[ends], ts[ends]
        order = np.lexsort((ts, u))
        return cls(u[order].astype(np.int64), i[order].astype(np.int64),
                   w[order].astype(np.float32), n_users, n_items)


def pooled_history(user: np.ndarray, item: np.ndarray, weight: np.ndarray, n_users: int, *,
                   length: int, half_life: float) -> tuple[np.ndarray, np.ndarray]:
    """Last ``length`` items of each user (rows sorted by (user, time)) and their pooling weights.

    Returns (items + 1 int64 [n_users, L], 0 = padding, oldest first; weights float32
    [n_users, L] = 0.5 ** (positions from the end / half_life) * weight).
    """
    users = np.arange(n_users)
    end = np.searchsorted(user, users, side="right")
    begin = np.searchsorted(user, users, side="left")
    idx = end[:, None] - length + np.arange(length)[None, :]
    valid = idx >= begin[:, None]
    safe = np.maximum(idx, 0)
    if len(item) == 0:
        return np.zeros((n_users, length), np.int64), np.zeros((n_users, length), np.float32)
    hist = np.where(valid, item[safe] + 1, 0).astype(np.int64)
    rec = 0.5 ** (np.arange(length - 1, -1, -1, dtype=np.float32) / half_life)
    w = np.where(valid, weight[safe] * rec[None, :], 0.0).astype(np.float32)
    return hist, w


def train_masked(net: TwoTower, sets: UserSets, items: dict[str, torch.Tensor], user_inputs: UserInputs,
                 settings: TrainSettings, *, weighted: bool, validate: Callable[[], float] | None = None,
                 epochs: int | None = None, aux: AuxLoss | None = None) -> TrainHistory:
    """Train ``net`` in place with the masked-history objective; early stopping, ``aux`` and the
    budget ``settings.max_events`` (counted in (user, item) rows, whole users per epoch;
    stream.py) as train_epochs."""
    rng = np.random.default_rng(settings.seed)
    torch.manual_seed(settings.seed)
    opt = make_optimizers(net, settings)
    w_all = sets.weight if weighted else np.ones(len(sets.user), np.float32)
    n_epochs = settings.epochs if epochs is None else epochs
    quota = epoch_quota(len(sets.user), settings.epochs, settings.max_events)
    losses: list[float] = []
    stop, seen = EarlyStop(validate, settings.patience), 0
    t0 = time.perf_counter()
    avg = epoch_average(settings.average_epochs, n_epochs, validate is not None)
    bar = tqdm(range(n_epochs), desc="two-tower", disable=not settings.progress, leave=False)
    for epoch in bar:
        net.train()
        loss, rows = _epoch(net, opt, sets, w_all, items, user_inputs, settings, rng, aux, quota)
        losses.append(loss)
        seen += rows
        opt.decay(settings.lr_decay)
        if avg is not None:
            avg.add(net, epoch)
        done = stop.after_epoch(net, epoch)
        bar.set_postfix(loss=f"{losses[-1]:.3f}", **({"val": f"{stop.scores[-1]:.4f}"} if stop.scores else {}))
        if done:
            break
    return finish_run(net, stop, avg, losses, t0, seen)


def _epoch(net: TwoTower, opt, sets: UserSets, w_all: np.ndarray, items: dict[str, torch.Tensor],
           user_inputs: UserInputs, st: TrainSettings, rng: np.random.Generator, aux: AuxLoss | None = None,
           quota: int | None = None) -> tuple[float, int]:
    """One epoch: (mean loss, (user, item) rows of the users it trained on)."""
    target = rng.random(len(sets.user)) < st.mask_fraction
    keep = ~target
    hist, hist_w = pooled_history(sets.user[keep], sets.item[keep], w_all[keep], sets.n_users,
                                  length=st.history, half_life=st.half_life)
    shape = (sets.n_users, sets.n_items)
    inputs = sp.csr_matrix((np.ones(int(keep.sum()), np.float32), (sets.user[keep], sets.item[keep])), shape=shape)
    targets = sp.csr_matrix((w_all[target], (sets.user[target], sets.item[target])), shape=shape)
    targets.sum_duplicates()
    users = np.flatnonzero(np.diff(targets.indptr) > 0)
    user_rows = np.bincount(sets.user, minlength=sets.n_users)
    users = take_users(users[rng.permutation(len(users))], user_rows, quota)
    all_items = np.arange(sets.n_items)
    total, steps = 0.0, 0
    for s in range(0, len(users), st.batch_size):
        ub = users[s:s + st.batch_size]
        u = net.user(**user_inputs(ub, hist[ub], hist_w[ub], rng))
        v, bias = _item_forward(net, items, all_items, rng, st.id_dropout)
        logits = u @ v.T / st.temperature + bias
        ins = inputs[ub].tocoo()
        logits = logits.index_put((torch.from_numpy(ins.row.astype(np.int64)), torch.from_numpy(ins.col.astype(np.int64))),
                                  torch.tensor(float("-inf")))
        logp = torch.log_softmax(logits, dim=1)
        tg = targets[ub].tocoo()
        r, c = torch.from_numpy(tg.row.astype(np.int64)), torch.from_numpy(tg.col.astype(np.int64))
        tw = torch.from_numpy(tg.data.astype(np.float32))
        per_user = torch.zeros(len(ub)).index_add(0, r, tw * logp[r, c])
        norm = torch.zeros(len(ub)).index_add(0, r, tw).clamp_min(1e-6)
        loss = -(per_user / norm).mean()
        if aux is not None:
            loss = loss + aux(net, v, bias)
        opt.zero_grad()
        loss.backward()
        opt.step()
        total += float(loss.detach())
        steps += 1
    return total / max(steps, 1), int(user_rows[users].sum())


def validation_mask(train: Interactions, method: str, share: float, *, seed: int) -> np.ndarray:
    """bool [n_events]: the fit part of the early-stopping split (the rest validates).

    "temporal": events up to the ``share`` time quantile; "random": a per-user random ``share``
    of each user's events (rounded, at least one stays in the fit part); "none": every event
    (no early stopping: the model trains its ``epochs`` on all events)."""
    if not len(train):
        return np.zeros(0, bool)
    if method == "none":
        return np.ones(len(train), bool)
    if method == "temporal":
        return train.timestamp <= float(np.quantile(train.timestamp, share))
    rng = np.random.default_rng(seed)
    order = np.lexsort((rng.random(len(train)), train.user))
    u = train.user[order]
    first = np.r_[True, u[1:] != u[:-1]]
    start = np.maximum.accumulate(np.where(first, np.arange(len(u)), 0))
    n = np.bincount(u, minlength=train.n_users)[u]
    keep = np.empty(len(train), bool)
    keep[order] = (np.arange(len(u)) - start) < np.maximum(np.floor(share * n + 0.5), 1)
    return keep
