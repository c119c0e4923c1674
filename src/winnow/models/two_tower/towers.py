"""The two towers (PyTorch modules) and the feature tables they read.

Item (candidate) tower, for item index i:
    [id_emb(i+1) | mean cat_emb(categories) | creator_emb | age_emb | pop_emb | W_text @ text]
    -> MLP (``hidden_layers`` ReLU layers; 0 = linear) -> L2-normalised vector [dim]
  Id and popularity bucket 0 mean "unknown": training replaces them by 0 with probability
  ``id_dropout``, so the tower also learns a content-only vector for items nobody touched yet.

User (query) tower, per request:
    [uid_emb(hashed bucket) | recency-weighted mean hist_emb(recent items) | mean attr_emb(hashed
     "key=value" tokens) | mean interest_emb(declared categories) | hour_emb | dow_emb]
    -> MLP -> vector; an optional query text is folded in through the item tower's text
    projection (``+ query_weight * W_text @ query``), then L2-normalised.

Shapes below: B = batch, L = history length, A = attribute tokens, C = categories per item,
T = text dimension. Index 0 is padding / unknown in every embedding table.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from winnow.core.config import TwoTowerConfig
from winnow.models.two_tower.encoding import pad_rows

N_POP_BUCKETS = 20
N_AGE_BUCKETS = 24


def masked_mean(emb: nn.Module, idx: torch.Tensor, weight: torch.Tensor | None = None, *,
                power: float = 1.0) -> torch.Tensor:
    """Weighted mean of emb[idx] over the last axis of ``idx`` [B, n], ignoring index 0.

    ``power`` 0.5: the weighted sum divided by sqrt(sum of weights) instead (the "sqrt" pooling of
    Mult-DAE's normalised input: longer histories give longer vectors)."""
    vec = emb(idx)  # [B, n, d]
    w = (idx > 0).float() if weight is None else weight * (idx > 0).float()
    total = w.sum(1, keepdim=True).clamp_min(1e-6)
    return (vec * w.unsqueeze(-1)).sum(1) / (total if power == 1.0 else total ** power)


@dataclass
class ItemTable:
    """Per-item inputs of the item tower, row = item index (numpy; moved to torch once).

    cats int64 [n, C] (category index + 1, 0 pad); creator int64 [n]; age int64 [n];
    pop int64 [n] (popularity bucket, 0 = unknown); text float32 [n, T].
    """

    cats: np.ndarray
    creator: np.ndarray
    age: np.ndarray
    pop: np.ndarray
    text: np.ndarray

    def tensors(self) -> dict[str, torch.Tensor]:
        return {"cats": torch.from_numpy(self.cats), "creator": torch.from_numpy(self.creator),
                "age": torch.from_numpy(self.age), "pop": torch.from_numpy(self.pop),
                "text": torch.from_numpy(self.text)}


def make_mlp(n_in: int, hidden: int, dim: int, layers: int) -> nn.Sequential:
    """``layers`` hidden ReLU layers of width ``hidden`` then a linear map to ``dim``; 0 = one
    linear map (a linear tower: each input's embedding is projected and summed)."""
    mods: list[nn.Module] = []
    for _ in range(layers):
        mods += [nn.Linear(n_in, hidden), nn.ReLU()]
        n_in = hidden
    return nn.Sequential(*mods, nn.Linear(n_in, dim))


def user_bucket(users: np.ndarray, buckets: int) -> np.ndarray:
    """int64 row of each user index in the hashed user-id table of ``buckets`` rows (1 .. buckets-1;
    row 0 = unknown user)."""
    return 1 + (np.asarray(users, np.int64) * 2_654_435_761) % (buckets - 1)


def pop_buckets(counts: np.ndarray) -> np.ndarray:
    """int64 bucket 1 + floor(log2(1 + count)), capped; items with 0 events get bucket 1."""
    return np.minimum(1 + np.floor(np.log2(1.0 + np.asarray(counts, np.float64))), N_POP_BUCKETS - 1).astype(np.int64)


class ItemTower(nn.Module):
    def __init__(self, n_items: int, n_categories: int, creator_buckets: int, text_dim: int, *,
                 emb: int, hidden: int, dim: int, dropout: float = 0.0, layers: int = 1) -> None:
        super().__init__()
        self.drop = nn.Dropout(dropout)
        self.id_emb = nn.Embedding(n_items + 1, emb, padding_idx=0, sparse=True)
        self.cat_emb = nn.Embedding(n_categories + 1, emb, padding_idx=0)
        self.creator_emb = nn.Embedding(creator_buckets, emb, padding_idx=0, sparse=True)
        self.age_emb = nn.Embedding(N_AGE_BUCKETS, emb)
        self.pop_emb = nn.Embedding(N_POP_BUCKETS, emb)
        self.text_proj = nn.Linear(max(text_dim, 1), emb, bias=False)
        self.text_dim = text_dim
        self.mlp = make_mlp(6 * emb, hidden, dim, layers)

    def text_vector(self, text: torch.Tensor) -> torch.Tensor:
        """W_text @ text: [B, T] -> [B, emb] (zeros when the model has no text)."""
        if self.text_dim == 0:
            return torch.zeros(text.shape[0], self.text_proj.out_features)
        return self.text_proj(text)

    def forward(self, ids: torch.Tensor, cats: torch.Tensor, creator: torch.Tensor, age: torch.Tensor,
                pop: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """ids int64 [B] (item index + 1, 0 = content only) ... -> float32 [B, dim], unit norm."""
        x = torch.cat([self.id_emb(ids), masked_mean(self.cat_emb, cats), self.creator_emb(creator),
                       self.age_emb(age), self.pop_emb(pop), self.text_vector(text)], dim=1)
        return nn.functional.normalize(self.mlp(self.drop(x)), dim=1)


class UserTower(nn.Module):
    def __init__(self, n_items: int, n_categories: int, user_buckets: int, attr_buckets: int, *,
                 emb: int, hidden: int, dim: int, dropout: float = 0.0, pooling: str = "mean",
                 layers: int = 1) -> None:
        super().__init__()
        self.drop = nn.Dropout(dropout)
        self.pool_power = {"mean": 1.0, "sqrt": 0.5}[pooling]
        self.uid_emb = nn.Embedding(user_buckets, emb, padding_idx=0, sparse=True)
        self.hist_emb = nn.Embedding(n_items + 1, emb, padding_idx=0, sparse=True)
        self.attr_emb = nn.Embedding(attr_buckets, emb, padding_idx=0, sparse=True)
        self.interest_emb = nn.Embedding(n_categories + 1, emb, padding_idx=0)
        self.hour_emb = nn.Embedding(25, emb)
        self.dow_emb = nn.Embedding(8, emb)
        self.mlp = make_mlp(6 * emb, hidden, dim, layers)
        self.query_weight = nn.Parameter(torch.tensor(1.0))

    def forward(self, uid: torch.Tensor, hist: torch.Tensor, hist_w: torch.Tensor, attrs: torch.Tensor,
                interests: torch.Tensor, hour: torch.Tensor, dow: torch.Tensor,
                query: torch.Tensor | None = None, query_proj: nn.Module | None = None) -> torch.Tensor:
        """uid [B], hist [B, L] (+1 shifted, 0 pad) with weights hist_w [B, L], attrs [B, A],
        interests [B, I], hour [B] (0 unknown, 1..24), dow [B] (0 unknown, 1..7);
        optional query [B, T] text vectors (zero rows = no query) -> [B, dim], unit norm."""
        x = torch.cat([self.uid_emb(uid), masked_mean(self.hist_emb, hist, hist_w, power=self.pool_power),
                       masked_mean(self.attr_emb, attrs), masked_mean(self.interest_emb, interests),
                       self.hour_emb(hour), self.dow_emb(dow)], dim=1)
        out = self.mlp(self.drop(x))
        if query is not None and query_proj is not None:
            out = out + self.query_weight * query_proj(query)
        return nn.functional.normalize(out, dim=1)


class TwoTower(nn.Module):
    """Both towers plus the query projection (item text space -> output space), and optionally a
    per-item logit bias ``item_bias`` [n_items + 1] (row 0 = unknown / content-only item) added
    outside the normalised dot product: logit(u, i) = u . v_i / temperature + item_bias[i + 1].

    The large id/hash tables are sparse embeddings (trained with SparseAdam: a step touches only
    the rows in the batch); everything else is dense (Adam)."""

    def __init__(self, *, n_items: int, n_categories: int, creator_buckets: int, text_dim: int,
                 user_buckets: int, attr_buckets: int, emb: int, hidden: int, dim: int,
                 dropout: float = 0.0, share_embeddings: bool = False, init_std: float = 1.0,
                 item_bias: bool = False, pooling: str = "mean", layers: int = 1) -> None:
        super().__init__()
        self.item = ItemTower(n_items, n_categories, creator_buckets, text_dim, emb=emb, hidden=hidden, dim=dim,
                              dropout=dropout, layers=layers)
        self.user = UserTower(n_items, n_categories, user_buckets, attr_buckets, emb=emb, hidden=hidden, dim=dim,
                              dropout=dropout, pooling=pooling, layers=layers)
        self.item_bias = nn.Parameter(torch.zeros(n_items + 1)) if item_bias else None
        self.query_proj = nn.Linear(max(text_dim, 1), dim, bias=False)
        if share_embeddings:  # history pooling reads the item tower's id embeddings
            self.user.hist_emb = self.item.id_emb
        if init_std != 1.0:  # PyTorch's default N(0, 1) is slow to move with Adam's small steps
            with torch.no_grad():
                for m in self.modules():
                    if isinstance(m, nn.Embedding):
                        m.weight.normal_(0.0, init_std)
                        if m.padding_idx is not None:
                            m.weight[m.padding_idx].zero_()

    def logit_bias(self, ids: torch.Tensor) -> torch.Tensor | float:
        """item_bias[ids] (ids = item index + 1, 0 = content only) as float [len(ids)], or 0.0
        for a model without the bias."""
        return 0.0 if self.item_bias is None else self.item_bias[ids]

    def param_groups(self) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
        """(sparse embedding weights, dense parameters)."""
        sparse = [w for w in {id(m.weight): m.weight for m in self.modules()
                              if isinstance(m, nn.Embedding) and m.sparse}.values() if isinstance(w, nn.Parameter)]
        ids = {id(p) for p in sparse}
        return sparse, [p for p in self.parameters() if id(p) not in ids]


def request_inputs(config: TwoTowerConfig, *, history: Sequence[int], attr_ids: list[int], interest_ids: list[int],
                   user: int | None, hour: int | None, dow: int | None,
                   widths: tuple[int, int]) -> dict[str, torch.Tensor]:
    """The user tower's inputs for one request (a batch of one), encoded as training encodes
    them: the last ``config.history`` items (index + 1; 0 pads the front) with half-life weights,
    the hashed attribute ids and the interest ids padded to ``widths`` (attributes, interests),
    the user's id bucket (0: unseen, or ids off), hour 1-24 and day of week 1-7 (0: unknown)."""
    L = config.history
    hist = np.zeros((1, L), np.int64)
    h = np.asarray(list(history)[-L:], np.int64) + 1
    if len(h):
        hist[0, L - len(h):] = h
    w = (0.5 ** (np.arange(L - 1, -1, -1, dtype=np.float32) / config.half_life))[None, :]
    uid = 0 if user is None or not config.use_user_id else int(user_bucket(np.array([user]), config.user_buckets)[0])
    return {"uid": torch.tensor([uid]), "hist": torch.from_numpy(hist), "hist_w": torch.from_numpy(w),
            "attrs": torch.from_numpy(pad_rows([attr_ids], widths[0])),
            "interests": torch.from_numpy(pad_rows([interest_ids], widths[1])),
            "hour": torch.tensor([0 if hour is None else hour % 24 + 1]),
            "dow": torch.tensor([0 if dow is None else (dow + 3) % 7 + 1])}  # training: 1 = Thursday
