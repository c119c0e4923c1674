"""Typed configuration of the retrieval models ([models.*] sections).

Part of winnow.core.config (which re-exports everything here); split out only to keep files
small. The defaults here (and in config.py / config_scale.py) are the one source of default
values; the packaged defaults.toml is their commented copy, checked equal key for key by
tests/unit/test_config_defaults.py.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PopularityConfig(_Section):
    window_days: float | None = Field(None, gt=0)  # None: all-time
    half_life_days: float | None = Field(None, gt=0)


class ItemItemConfig(_Section):
    neighbours: int = Field(10, ge=1)
    shrinkage: float = Field(20.0, ge=0)
    normalize: Literal["cosine", "none"] = "cosine"


class ALSConfig(_Section):
    factors: int = Field(32, ge=1)
    iterations: int = Field(15, ge=1)
    # iterations of a warm-started fit ([training] warm_start): 3 is within the noise of a cold
    # 15 on ml-latest-small and a 100k-item world at ~4x less CPU (bench/warm_start.py, docs/SCALING.md)
    warm_iterations: int = Field(3, ge=1)
    regularization: float = Field(30.0, ge=0)
    alpha: float = Field(4.0, gt=0)
    bm25: bool = False
    bm25_k1: float = Field(100.0, gt=0)
    bm25_b: float = Field(0.8, ge=0, le=1)
    seed: int = 0


class BPRConfig(_Section):
    factors: int = Field(64, ge=1)
    iterations: int = Field(100, ge=1)
    learning_rate: float = Field(0.005, gt=0)
    regularization: float = Field(0.01, ge=0)
    seed: int = 0


class EASEConfig(_Section):
    l2: float = Field(500.0, gt=0)
    max_items: int = Field(50_000, ge=1)


class RP3betaConfig(_Section):
    """RP3beta graph walk (winnow.models.rp3beta)."""

    alpha: float = Field(0.7, gt=0)
    beta: float = Field(0.6, ge=0)
    neighbours: int = Field(200, ge=1)


class SequenceConfig(_Section):
    """Time-neighbour item-item, "watched this, then watched" (winnow.models.sequence)."""

    window: int = Field(20, ge=1, le=1000)
    decay: float = Field(0.95, gt=0, le=1)
    shrinkage: float = Field(10.0, ge=0)
    neighbours: int = Field(300, ge=1)
    direction: Literal["both", "forward"] = "both"
    seed: int = 0                            # order of events that share a timestamp


class UserKNNConfig(_Section):
    """User-based nearest neighbours (winnow.models.userknn)."""

    neighbours: int = Field(120, ge=1)
    shrinkage: float = Field(0.0, ge=0)


class TwoTowerConfig(_Section):
    """PyTorch CPU two-tower retrieval (winnow.models.two_tower)."""

    dim: int = Field(64, ge=2)               # output (retrieval space) dimension
    embedding: int = Field(32, ge=2)         # width of every input embedding
    hidden: int = Field(128, ge=2)
    epochs: int = Field(30, ge=1)            # maximum; early stopping on validation NDCG@10
    patience: int = Field(3, ge=1)
    # events x epochs one training run may see (two_tower/stream.py): a longer stream trains every
    # epoch on a seeded sample of max_train_events // epochs events; 0 = no budget
    max_train_events: int = Field(4_000_000, ge=0)
    budget_sampling: Literal["uniform", "recent"] = "uniform"  # that sample: uniform | recency-weighted
    batch_size: int = Field(1024, ge=2)
    learning_rate: float = Field(0.003, gt=0)
    temperature: float = Field(0.05, gt=0)
    logq: float = Field(1.0, ge=0)           # strength of the logQ correction (1 = Yi et al.)
    extra_negatives: int = Field(0, ge=0)    # uniform negatives added to the in-batch ones
    pop_reg: float = Field(0.0, ge=0)        # regulariser against popular-item concentration
    id_dropout: float = Field(0.3, ge=0, le=1)  # share of items trained content-only
    context_dropout: float = Field(0.5, ge=0, le=1)
    query_prob: float = Field(0.1, ge=0, le=1)  # share of events trained with a text query
    history: int = Field(50, ge=1)           # recent items pooled by the user tower
    half_life: float = Field(20.0, gt=0)     # recency half-life, in positions
    user_buckets: int = Field(100_003, ge=2)  # hashed user-id buckets (unseen ids work)
    attr_buckets: int = Field(20_011, ge=2)
    creator_buckets: int = Field(4096, ge=2)
    # "auto": MiniLM up to text_auto_max_items items, TF-IDF above (MiniLM's first encode of a big
    # catalog costs more than the rest of training: docs/SCALING.md); "minilm" / "tfidf" always win
    text_backend: Literal["none", "tfidf", "minilm", "auto"] = "auto"
    text_auto_max_items: int = Field(200_000, ge=0)
    text_dim: int = Field(64, ge=1)          # TF-IDF SVD dimension (MiniLM is 384)
    # MiniLM: "fp32" = the exact reference vectors; "int8" = torch dynamic int8 Linear layers
    # (faster, cosine to fp32 in bench/results/text_encoder_rate.json)
    text_precision: Literal["fp32", "int8"] = "fp32"
    text_max_tokens: int = Field(256, ge=8, le=512)  # MiniLM word pieces kept per item text (model cap 256)
    validation_quantile: float = Field(0.9, gt=0, lt=1)
    validation_users: int = Field(1000, ge=1)
    # early-stopping validation ranks at most this many items: a bigger catalog is replaced by the
    # validation users' held-out items plus a seeded uniform sample (two_tower/validation.py)
    validation_items: int = Field(100_000, ge=100)
    refit: bool = True                       # retrain on all data for the best epoch count
    item_k: float = Field(10.0, gt=0)        # cold-item blend: w = n / (n + item_k)
    seed: int = 0
    warm_epochs: int = Field(3, ge=1)        # max epochs of a warm-started fit: bench/warm_start.py, docs/SCALING.md
    threads: int = Field(1, ge=1)            # torch threads in training (1 beat 2 on a busy 2-core box)
    # objective: "next_item" = each event from the history before it (temporal protocols);
    # "masked" = each epoch hide mask_fraction of every user's items and predict them from the
    # rest with a softmax over the whole catalog (random per-user protocols)
    objective: Literal["next_item", "masked"] = "next_item"
    mask_fraction: float = Field(0.2, gt=0, lt=1)
    negatives: Literal["in_batch", "full"] = "in_batch"  # next_item: in-batch (+logQ) or full softmax
    use_user_id: bool = True                 # False: the hashed user-id embedding is left out
    share_embeddings: bool = False           # history pooling uses the item tower's id embeddings
    init_std: float = Field(1.0, gt=0, le=1)  # std of the embedding tables' normal init
    weighted: bool = False                   # event weights (e.g. log1p plays) weight pooling + targets
    dropout: float = Field(0.0, ge=0, lt=1)  # on the towers' MLP inputs
    weight_decay: float = Field(0.0, ge=0)   # AdamW decay of the dense parameters
    # early-stopping cut of the train part; "none": no early stopping, train ``epochs`` epochs on all
    validation: Literal["temporal", "random", "none"] = "temporal"
    item_bias: bool = False                  # per-item logit bias outside the normalised dot product
    pooling: Literal["mean", "sqrt"] = "mean"  # history pooling: weighted mean, or sum / sqrt(weights)
    lr_decay: float = Field(1.0, gt=0, le=1)  # learning rates times this after every epoch
    hidden_layers: int = Field(1, ge=0, le=3)  # ReLU layers of each tower's MLP; 0 = linear towers
    average_epochs: int = Field(0, ge=0, le=1000)  # runs without validation end on the last k epochs' mean
    # auxiliary time-neighbour (item2vec-style) loss, two_tower/sequence.py; weight 0 = off
    sequence_weight: float = Field(0.0, ge=0, le=100)
    sequence_window: int = Field(3, ge=1, le=100)  # neighbours: at most this many positions apart
    sequence_batch: int = Field(1024, ge=1)          # pairs sampled per training step
    sequence_context: Literal["history", "item"] = "history"  # context: user tower on [i] | item tower

    @model_validator(mode="after")
    def _budget_is_usable(self) -> TwoTowerConfig:
        if 0 < self.max_train_events < self.epochs * self.batch_size:
            raise ValueError(f"max_train_events = {self.max_train_events} is below epochs x batch_size = "
                             f"{self.epochs * self.batch_size} (every epoch must see a batch); 0 = no budget")
        if self.budget_sampling == "recent" and self.objective != "next_item":
            raise ValueError("budget_sampling = 'recent' applies to objective = 'next_item' only (the masked "
                             f"objective samples whole users uniformly); objective is {self.objective!r}")
        return self


class ModelsConfig(_Section):
    popularity: PopularityConfig = PopularityConfig()
    itemitem: ItemItemConfig = ItemItemConfig()
    als: ALSConfig = ALSConfig()
    bpr: BPRConfig = BPRConfig()
    ease: EASEConfig = EASEConfig()
    rp3beta: RP3betaConfig = RP3betaConfig()
    userknn: UserKNNConfig = UserKNNConfig()
    sequence: SequenceConfig = SequenceConfig()
    two_tower: TwoTowerConfig = TwoTowerConfig()
