"""Training loop of the two-tower model: in-batch sampled softmax with logQ correction.

For a batch of B (user-state, positive item) events the loss is the softmax cross-entropy of
the positive among the batch's items, logits ``u . v / temperature - log(expected count)``:
an in-batch item j appears about ``B * q_j`` times (q = training frequency), so its logit is
corrected by ``log(B q_j)`` (Yi et al., RecSys 2019); ``extra_negatives`` uniform items are
corrected by ``log(M / n_items)``. Other rows that hold the same positive item are masked.

Optional popularity regulariser (``pop_reg`` > 0): adds ``pop_reg * mean_i sum_j p_ij
(log pop_j - mean log pop)`` with p the uncorrected in-batch softmax, which pushes probability
mass off the popular items (trade-off measured in bench/coldstart.py).

With ``item_bias`` every logit also gets the item's learned bias (a popularity prior outside the
normalised dot product; with logQ correction the bias is what carries popularity back into the
scores). Learning rates are multiplied by ``lr_decay`` after every epoch.

Each user state is the history *before* the event (no leakage), built per batch from the
user-sorted event arrays. Validation: a temporal cut of the training events; early stopping on
NDCG@10 of validation users. With ``max_events`` a run sees at most that many events in all its
epochs (stream.py: a seeded sample per epoch when the stream is longer than its share).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Protocol, TypedDict
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from winnow.models.two_tower.averaging import EpochAverage, epoch_average
from winnow.models.two_tower.stopping import EarlyStop
from winnow.models.two_tower.stream import epoch_quota, epoch_rows, recency_weights
from winnow.models.two_tower.towers import TwoTower


@dataclass
class EventArrays:
    """Training events sorted by (user, time). item1 = item index + 1; start[r] = first row of
    row r's user. hour/dow 1-based (0 = unknown); timestamp int64 seconds."""

    user: np.ndarray
    item1: np.ndarray
    start: np.ndarray
    hour: np.ndarray
    dow: np.ndarray
    timestamp: np.ndarray

    @classmethod
    def build(cls, user: np.ndarray, item: np.ndarray, timestamp: np.ndarray) -> EventArrays:
        order = np.lexsort((timestamp, user))
        u = user[order].astype(np.int64)
        ts = timestamp[order]
        first = np.r_[True, u[1:] != u[:-1]]
        start = np.maximum.accumulate(np.where(first, np.arange(len(u)), 0))
        hour = (ts // 3600) % 24 + 1
        dow = (ts // 86_400 + 3) % 7 + 1  # 1970-01-01 was a Thursday
        return cls(u, item[order].astype(np.int64) + 1, start, hour.astype(np.int64), dow.astype(np.int64),
                   ts.astype(np.int64))

    def __len__(self) -> int:
        return len(self.user)

    def history(self, rows: np.ndarray, length: int, half_life: float) -> tuple[np.ndarray, np.ndarray]:
        """(items+1 int64 [len(rows), L], recency weights float32) of the events before each row."""
        idx = rows[:, None] - length + np.arange(length)[None, :]
        valid = idx >= self.start[rows][:, None]
        hist = np.where(valid, self.item1[np.maximum(idx, 0)], 0)
        age = np.arange(length - 1, -1, -1, dtype=np.float32)
        return hist, np.broadcast_to(0.5 ** (age / half_life), hist.shape).astype(np.float32)


@dataclass
class TrainSettings:
    epochs: int
    batch_size: int
    learning_rate: float
    temperature: float
    logq: float
    extra_negatives: int
    pop_reg: float
    id_dropout: float
    context_dropout: float
    query_prob: float
    history: int
    half_life: float
    patience: int
    seed: int
    progress: bool
    negatives: str = "in_batch"     # "in_batch" (+ extra uniform, logQ) | "full" (whole catalog)
    weight_decay: float = 0.0       # AdamW decay of the dense parameters
    mask_fraction: float = 0.2      # masked objective: share of each user's items used as targets
    lr_decay: float = 1.0           # learning rates times this after every epoch
    average_epochs: int = 0         # runs without validation end on the mean of the last k epochs
    max_events: int | None = None   # events x epochs of one run (stream.py); None = unbounded
    sampling: str = "uniform"       # the sample when max_events binds: "uniform" | "recent"


class EventRows(Protocol):
    """What the next-item loop reads of its training events: ``EventArrays``, or one worker's
    shard of them (winnow.engine.ray_train.ShardedEvents)."""

    user: np.ndarray
    item1: np.ndarray
    hour: np.ndarray
    dow: np.ndarray
    timestamp: np.ndarray

    def __len__(self) -> int: ...

    def history(self, rows: np.ndarray, length: int, half_life: float) -> tuple[np.ndarray, np.ndarray]: ...


class TrainHistory(TypedDict, total=False):
    """A training run's report: per-epoch loss and validation NDCG@10, the epoch kept, seconds,
    events trained on (``events_seen``, at most the budget) and validation seconds; a refit adds
    its seconds, epochs and events."""

    loss: list[float]
    validation_ndcg: list[float]
    best_epoch: int
    seconds: float
    events_seen: int
    validation_seconds: float
    refit_seconds: float
    refit_epochs: int
    refit_events_seen: int


def run_report(history: TrainHistory, max_events: int | None) -> dict[str, object]:
    """What a bundle manifest records of a fit's history (engine.two_tower): the budget, epochs
    trained and kept, events seen per run, best validation NDCG@10 (None without validation)
    and the seconds of each part."""
    h: dict = dict(history)
    scores = h.get("validation_ndcg") or []
    return {"max_train_events": max_events, "epochs": len(h.get("loss", [])), "best_epoch": h.get("best_epoch"),
            "events_seen": h.get("events_seen"), "refit_epochs": h.get("refit_epochs"),
            "refit_events_seen": h.get("refit_events_seen"),
            "best_validation_ndcg": round(max(scores), 5) if scores else None,
            **{k: round(float(h[k]), 2) for k in ("seconds", "validation_seconds", "refit_seconds") if k in h}}


UserInputs = Callable[[np.ndarray, np.ndarray, np.ndarray, np.random.Generator | None], dict[str, torch.Tensor]]
AuxLoss = Callable[[TwoTower, torch.Tensor | None, torch.Tensor | float | None], torch.Tensor]


def train_epochs(net: TwoTower, events: EventRows, items: dict[str, torch.Tensor], item_counts: np.ndarray,
                 user_inputs: UserInputs, settings: TrainSettings, *,
                 validate: Callable[[], float] | None = None, epochs: int | None = None,
                 aux: AuxLoss | None = None) -> TrainHistory:
    """Train ``net`` in place; with ``validate`` keep the best epoch's weights (early stopping).

    ``user_inputs(users, hist, hist_w, rng)`` returns the user tower's keyword inputs for a batch
    (with ``rng`` the training dropouts are applied). Returns a history dict
    (per-epoch loss, validation score, best epoch, seconds). ``aux(net, v, bias)``: an extra
    loss added at every step (sequence.SequenceLoss; v = the catalog's item vectors when the step
    has them, else None).
    """
    rng = np.random.default_rng(settings.seed)
    torch.manual_seed(settings.seed)
    opt = make_optimizers(net, settings)
    n_items = len(item_counts)
    q = np.maximum(item_counts.astype(np.float64), 1.0)
    log_q = torch.from_numpy(np.log(q / q.sum())).float()
    log_pop = torch.from_numpy(np.log1p(item_counts.astype(np.float64))).float()
    n_epochs = settings.epochs if epochs is None else epochs
    quota = epoch_quota(len(events), settings.epochs, settings.max_events)
    weights = recency_weights(events.timestamp) if quota is not None and settings.sampling == "recent" else None
    steps = max(1, math.ceil((len(events) if quota is None else quota) / settings.batch_size))
    losses: list[float] = []
    stop, seen = EarlyStop(validate, settings.patience), 0
    t0 = time.perf_counter()
    avg = epoch_average(settings.average_epochs, n_epochs, validate is not None)
    bar = tqdm(range(n_epochs), desc="two-tower", disable=not settings.progress, leave=False)
    for epoch in bar:
        net.train()
        perm = epoch_rows(len(events), quota, rng, weights)
        total = 0.0
        for s in range(steps):
            rows = perm[s * settings.batch_size:(s + 1) * settings.batch_size]
            if len(rows) < 2:
                continue
            seen += len(rows)
            total += _step(net, opt, events, rows, items, log_q, log_pop, n_items, user_inputs, settings, rng, aux)
        losses.append(total / steps)
        opt.decay(settings.lr_decay)
        if avg is not None:
            avg.add(net, epoch)
        done = stop.after_epoch(net, epoch)
        bar.set_postfix(loss=f"{losses[-1]:.3f}", **({"val": f"{stop.scores[-1]:.4f}"} if stop.scores else {}))
        if done:
            break
    return finish_run(net, stop, avg, losses, t0, seen)


def finish_run(net: TwoTower, stop: EarlyStop, avg: EpochAverage | None, losses: list[float],
               t0: float, seen: int) -> TrainHistory:
    """End a run (both objectives): the best epoch's weights (or the epoch average), eval mode,
    and its report."""
    stop.finish(net)
    if avg is not None:
        avg.apply(net)
    net.eval()
    return {"loss": losses, "validation_ndcg": stop.scores, "best_epoch": stop.best_epoch,
            "seconds": time.perf_counter() - t0, "events_seen": seen, "validation_seconds": stop.seconds}


def make_optimizers(net: TwoTower, settings: TrainSettings) -> _Optimizers:
    """SparseAdam on the sparse tables; Adam (AdamW when ``weight_decay`` > 0) on the rest."""
    sparse, dense = net.param_groups()
    dense_opt = (torch.optim.AdamW(dense, lr=settings.learning_rate, weight_decay=settings.weight_decay)
                 if settings.weight_decay > 0 else torch.optim.Adam(dense, lr=settings.learning_rate))
    return _Optimizers(torch.optim.SparseAdam(sparse, lr=settings.learning_rate), dense_opt)


class _Optimizers:
    """SparseAdam for the sparse embedding tables + Adam for the rest, stepped together."""

    def __init__(self, *opts: torch.optim.Optimizer) -> None:
        self.opts = opts

    def zero_grad(self) -> None:
        for o in self.opts:
            o.zero_grad()

    def step(self) -> None:
        for o in self.opts:
            o.step()

    def decay(self, factor: float) -> None:
        """Multiply every learning rate by ``factor`` (called once per epoch)."""
        if factor != 1.0:
            for o in self.opts:
                for g in o.param_groups:
                    g["lr"] *= factor


def _step(net: TwoTower, opt: _Optimizers, events: EventRows, rows: np.ndarray,
          items: dict[str, torch.Tensor], log_q: torch.Tensor, log_pop: torch.Tensor, n_items: int,
          user_inputs: UserInputs, st: TrainSettings, rng: np.random.Generator, aux: AuxLoss | None = None) -> float:
    pos = events.item1[rows] - 1
    hist, hist_w = events.history(rows, st.history, st.half_life)
    uin = user_inputs(events.user[rows], hist, hist_w, rng)
    ctx_drop = rng.random(len(rows)) < st.context_dropout
    uin["hour"] = torch.from_numpy(np.where(ctx_drop, 0, events.hour[rows]))
    uin["dow"] = torch.from_numpy(np.where(ctx_drop, 0, events.dow[rows]))
    proj = None
    if st.query_prob > 0 and net.item.text_dim > 0:
        use_q = torch.from_numpy(rng.random(len(rows)) < st.query_prob).float().unsqueeze(1)
        uin["query"] = items["text"][pos] * use_q
        proj = net.query_proj
    u = net.user(**uin, query_proj=proj) if proj is not None else net.user(**uin)
    if st.negatives == "full":  # exact softmax over the whole catalog: no sampling, no logQ
        v, bias = _item_forward(net, items, np.arange(n_items), rng, st.id_dropout)
        loss = torch.nn.functional.cross_entropy(u @ v.T / st.temperature + bias, torch.from_numpy(pos))
        if aux is not None:
            loss = loss + aux(net, v, bias)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return float(loss.detach())
    cand = pos
    if st.extra_negatives > 0:
        cand = np.r_[pos, rng.integers(0, n_items, st.extra_negatives)]
    v, bias = _item_forward(net, items, cand, rng, st.id_dropout)
    logits = u @ v.T / st.temperature + bias
    b = len(rows)
    corr = torch.cat([log_q[cand[:b]] + math.log(b),
                      torch.full((len(cand) - b,), math.log(max(st.extra_negatives, 1) / n_items))])
    logits_c = logits - st.logq * corr.unsqueeze(0)
    pos_t = torch.from_numpy(pos)
    same = (pos_t.unsqueeze(1) == torch.from_numpy(cand).unsqueeze(0))
    same[torch.arange(b), torch.arange(b)] = False
    logits_c = logits_c.masked_fill(same, float("-inf"))
    loss = torch.nn.functional.cross_entropy(logits_c, torch.arange(b))
    if st.pop_reg > 0:
        p = torch.softmax(logits[:, :b].masked_fill(same[:, :b], float("-inf")), dim=1)
        lp = log_pop[cand[:b]]
        loss = loss + st.pop_reg * (p @ (lp - lp.mean())).mean()
    if aux is not None:
        loss = loss + aux(net, None, None)
    opt.zero_grad()
    loss.backward()
    opt.step()
    return float(loss.detach())


def _item_forward(net: TwoTower, items: dict[str, torch.Tensor], idx: np.ndarray,
                  rng: np.random.Generator | None, id_dropout: float) -> tuple[torch.Tensor, torch.Tensor | float]:
    """Item tower on item indices ``idx``: (vectors [len(idx), dim], logit bias [len(idx)] or 0.0
    without ``item_bias``); with ``rng``, ids and popularity are dropped to the content-only
    input (0, whose bias is row 0) with probability ``id_dropout``."""
    ids = idx + 1
    pop = items["pop"][idx]
    if rng is not None and id_dropout > 0:
        drop = rng.random(len(idx)) < id_dropout
        ids = np.where(drop, 0, ids)
        pop = pop.masked_fill(torch.from_numpy(drop), 0)
    t, ids_t = torch.from_numpy(idx), torch.from_numpy(ids)
    v = net.item(ids_t, items["cats"][t], items["creator"][t], items["age"][t], pop, items["text"][t])
    return v, net.logit_bias(ids_t)


@torch.no_grad()
def item_logit_bias(net: TwoTower, n_items: int) -> tuple[np.ndarray, float]:
    """(float32 [n_items] learned logit bias of each item, bias of the content-only input);
    zeros and 0.0 for a model without ``item_bias``."""
    if net.item_bias is None:
        return np.zeros(n_items, np.float32), 0.0
    b = net.item_bias.detach().numpy().astype(np.float32)
    return b[1:n_items + 1].copy(), float(b[0])


@torch.no_grad()
def item_vectors(net: TwoTower, items: dict[str, torch.Tensor], *, content_only: bool,
                 batch_size: int = 8192, rows: np.ndarray | None = None) -> np.ndarray:
    """float32 [n_items, dim]: the collaborative (id + content) or content-only item vectors;
    with ``rows`` (item indices) those items' vectors only, in that order."""
    all_rows = np.arange(items["pop"].shape[0]) if rows is None else np.asarray(rows, np.int64)
    n = len(all_rows)
    out = []
    for s in range(0, n, batch_size):
        idx = all_rows[s:s + batch_size]
        t = torch.from_numpy(idx)
        ids = torch.zeros(len(idx), dtype=torch.int64) if content_only else t + 1
        pop = torch.zeros(len(idx), dtype=torch.int64) if content_only else items["pop"][t]
        out.append(net.item(ids, items["cats"][t], items["creator"][t], items["age"][t], pop, items["text"][t]))
    if not out:
        return np.zeros((0, net.query_proj.out_features), np.float32)
    return torch.cat(out).numpy().astype(np.float32)
