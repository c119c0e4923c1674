"""Typed configuration of the retrieval models ([models.*] sections).

Part of winnow.core.config (which re-exports everything here); split out only to keep files
small. Defaults here are overridden by the tuned values in the packaged defaults.toml.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PopularityConfig(_Section):
    window_days: float | None = Field(None, gt=0)  # None: all-time
    half_life_days: float | None = Field(None, gt=0)


class ItemItemConfig(_Section):
    neighbours: int = Field(100, ge=1)
    shrinkage: float = Field(10.0, ge=0)
    normalize: Literal["cosine", "none"] = "cosine"


class ALSConfig(_Section):
    factors: int = Field(64, ge=1)
    iterations: int = Field(15, ge=1)
    regularization: float = Field(0.05, ge=0)
    alpha: float = Field(1.0, gt=0)
    bm25: bool = True
    bm25_k1: float = Field(100.0, gt=0)
    bm25_b: float = Field(0.8, ge=0, le=1)
    seed: int = 0


class BPRConfig(_Section):
    factors: int = Field(64, ge=1)
    iterations: int = Field(100, ge=1)
    learning_rate: float = Field(0.01, gt=0)
    regularization: float = Field(0.01, ge=0)
    seed: int = 0


class EASEConfig(_Section):
    l2: float = Field(500.0, gt=0)
    max_items: int = Field(50_000, ge=1)


class TwoTowerConfig(_Section):
    """PyTorch CPU two-tower retrieval (winnow.models.two_tower)."""

    dim: int = Field(64, ge=2)               # output (retrieval space) dimension
    embedding: int = Field(32, ge=2)         # width of every input embedding
    hidden: int = Field(128, ge=2)
    epochs: int = Field(30, ge=1)            # maximum; early stopping on validation NDCG@10
    patience: int = Field(3, ge=1)
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
    text_backend: Literal["none", "tfidf", "minilm"] = "minilm"
    text_dim: int = Field(64, ge=1)          # TF-IDF SVD dimension (MiniLM is 384)
    validation_quantile: float = Field(0.9, gt=0, lt=1)
    validation_users: int = Field(1000, ge=1)
    refit: bool = True                       # retrain on all data for the best epoch count
    item_k: float = Field(10.0, gt=0)        # cold-item blend: w = n / (n + item_k)
    seed: int = 0
    threads: int = Field(1, ge=1)            # torch threads in training (1 beat 2 on a busy 2-core box)


class ModelsConfig(_Section):
    popularity: PopularityConfig = PopularityConfig()
    itemitem: ItemItemConfig = ItemItemConfig()
    als: ALSConfig = ALSConfig()
    bpr: BPRConfig = BPRConfig()
    ease: EASEConfig = EASEConfig()
    two_tower: TwoTowerConfig = TwoTowerConfig()
