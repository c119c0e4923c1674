"""``TwoTowerRecommender`` ("two_tower"): the two-tower model behind the Recommender contract.

Side information is optional: ``with_side_info(items, users)`` (the ``Dataset.items`` / ``.users``
frames, one row per index) before ``fit`` adds item content (categories, creator, age, text) and
user attributes / declared interests; without it the towers see ids, history and popularity only.

After fit:
- ``item_vectors_`` float32 [n_items, dim]: w * collaborative + (1 - w) * content-only vector,
  w = n / (n + item_k) with n the item's training events, re-normalised. Items with no events
  get their content vector (item cold start); these are what the ANN index holds.
- ``user_vector(...)`` runs the user tower for one request (history, attributes, interests,
  context, optional query text vector); ``_score`` uses each user's training history.
Saved as model.json + arrays.npz + weights.safetensors (a state dict of tensors), no pickle.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Self

import numpy as np
import pandas as pd
import torch

from winnow.core.config import TwoTowerConfig
from winnow.data.interactions import Interactions
from winnow.models.base import Recommender, top_k
from winnow.models.content import MiniLMEncoder, StructuredContent, TfidfSvdEncoder, stable_hash
from winnow.models.two_tower.encoding import attribute_tokens, blend_item_vectors, category_centroids, pad_rows
from winnow.models.two_tower.persist import load_two_tower, save_two_tower
from winnow.models.two_tower.masked import UserSets, pooled_history, train_masked, validation_mask
from winnow.models.two_tower.sequence import make_sequence_loss
from winnow.models.two_tower.towers import ItemTable, TwoTower, pop_buckets, request_inputs, user_bucket
from winnow.models.two_tower.text import PreparedText, prepare_resolved, text_encoder
from winnow.models.two_tower.validation import validation_catalog, validation_ndcg
from winnow.models.two_tower.warm import WarmStart, warm_state
from winnow.models.two_tower.train import (
    EventArrays,
    TrainHistory,
    TrainSettings,
    item_logit_bias,
    item_vectors,
    train_epochs,
)

MAX_CATS, MAX_ATTRS, MAX_INTERESTS = 8, 12, 6


class TwoTowerRecommender(Recommender):
    """Two-tower retrieval model (see winnow.models.two_tower)."""

    name = "two_tower"

    def __init__(self, **params: Any) -> None:
        self.config = TwoTowerConfig(**params)
        self._items: pd.DataFrame | None = None
        self._users: pd.DataFrame | None = None
        self._warm: WarmStart | None = None
        self._text: PreparedText | None = None
        self.text_report_: dict[str, Any] | None = None
        self.warm_reason_: str | None = None
        self.progress = False

    @classmethod
    def from_config(cls, section: TwoTowerConfig) -> TwoTowerRecommender:
        return cls(**section.model_dump())

    def get_params(self) -> dict[str, Any]:
        return self.config.model_dump()

    def with_side_info(self, items: pd.DataFrame | None, users: pd.DataFrame | None) -> Self:
        """Use item content and user attributes (frames row-aligned with the index spaces)."""
        self._items, self._users = items, users
        return self

    def side_info(self) -> tuple[pd.DataFrame | None, pd.DataFrame | None]:
        """(items, users): the frames given to ``with_side_info`` (None: not given)."""
        return self._items, self._users

    # --- features -----------------------------------------------------------------------------
    def _item_frame(self, n: int) -> pd.DataFrame:
        items = self._items if self._items is not None and len(self._items) == n else None
        return items if items is not None else pd.DataFrame({"item_id": [str(i) for i in range(n)]})

    def text_encoder(self, corpus: Sequence[str] = ()) -> MiniLMEncoder | TfidfSvdEncoder:
        """The configured text encoder (two_tower/text.py): fit, queries and new items share it."""
        return text_encoder(self.config, corpus)

    def prepare_text(self, n_items: int, *, cache: str | Path | None = None) -> PreparedText:
        """Encode the side information's item texts for a fit on ``n_items`` items (vectors of
        texts in ``cache``, a directory, are reused: winnow.models.text_cache); the next ``fit``
        on that many items uses them, and ``text_report_`` says what was encoded. A
        ``text_backend = "auto"`` config is resolved here (``resolve_backend``: its reason is
        the report's ``backend_choice``) and the config keeps the backend used."""
        self.config, prepared = prepare_resolved(self.config, self._item_frame(n_items), cache=cache)
        self.with_text(prepared)
        return prepared

    def with_text(self, prepared: PreparedText | None) -> Self:
        """Fit with these item text vectors (from ``prepare_text``, e.g. run by the Ray driver
        once for every worker) instead of encoding the texts again."""
        self._text = prepared
        self.text_report_ = None if prepared is None else prepared.report
        return self

    def prepared_text(self) -> PreparedText | None:
        """What the next ``fit`` will use as item text vectors (None: it encodes them itself)."""
        return self._text

    def _item_table(self, train: Interactions) -> ItemTable:
        cfg, n = self.config, train.n_items
        ref = int(train.timestamp.max()) if len(train) else 0
        frame = self._item_frame(n)
        self.structure_ = StructuredContent(creator_buckets=cfg.creator_buckets).fit(frame, reference=ref)
        prepared = self._text if self._text is not None and len(self._text.vectors) == n else self.prepare_text(n)
        self.text_encoder_: TfidfSvdEncoder | None = prepared.encoder
        text = prepared.vectors
        content = self.structure_.transform(frame, text)
        cats = content.categories
        cat_rows = [(cats.indices[cats.indptr[i]:cats.indptr[i + 1]] + 1).tolist() for i in range(n)]
        counts = np.bincount(train.item, minlength=n)
        return ItemTable(pad_rows(cat_rows, MAX_CATS), content.creator, content.age, pop_buckets(counts),
                         content.text)

    def _user_tables(self, train: Interactions, cats: np.ndarray) -> None:
        cfg, n = self.config, train.n_users
        users = self._users if self._users is not None and len(self._users) == n else None
        attrs: list[list[int]] = [[] for _ in range(n)]
        interests: list[list[int]] = [[] for _ in range(n)]
        if users is not None:
            for u, a in enumerate(users["attributes"]):
                if isinstance(a, dict):
                    attrs[u] = [stable_hash(t, cfg.attr_buckets) for t in attribute_tokens(a)]
            for u, decl in enumerate(users.get("interests", pd.Series([[]] * n))):
                interests[u] = self.interest_ids(decl if isinstance(decl, (list, np.ndarray)) else [])
        # pseudo-interests: the top categories of the user's training items (stands in for
        # declared interests so onboarding interests have a trained meaning)
        top = np.zeros((n, MAX_INTERESTS), np.int64)
        if len(train):
            uc = pd.DataFrame({"u": np.repeat(train.user, MAX_CATS), "c": cats[train.item].ravel()})
            uc = uc[uc.c > 0].value_counts().reset_index().sort_values(["u", "count"], ascending=[True, False])
            uc["r"] = uc.groupby("u").cumcount()
            uc = uc[uc.r < 3]
            top[uc.u.to_numpy(), uc.r.to_numpy()] = uc.c.to_numpy()
        self.user_attrs_ = pad_rows(attrs, MAX_ATTRS)
        self.user_declared_ = pad_rows(interests, MAX_INTERESTS)
        self.user_pseudo_ = top

    def interest_ids(self, interests: list[str] | np.ndarray) -> list[int]:
        """Category ids (+1) of declared interests that are known categories."""
        return [self.structure_.categories_[c] + 1 for c in map(str, interests) if c in self.structure_.categories_]

    def _user_inputs(self, users: np.ndarray, hist: np.ndarray, hist_w: np.ndarray,
                     rng: np.random.Generator | None) -> dict[str, torch.Tensor]:
        cfg = self.config
        uid = user_bucket(users, cfg.user_buckets)
        if not cfg.use_user_id:
            uid = np.zeros_like(uid)
        interests = np.where(self.user_declared_[users] > 0, self.user_declared_[users], self.user_pseudo_[users])
        if rng is not None:  # teach the towers the cold paths: unknown id, no interests
            uid = np.where(rng.random(len(users)) < cfg.id_dropout, 0, uid)
            interests = np.where(rng.random((len(users), 1)) < 0.5, 0, interests)
        zeros = torch.zeros(len(users), dtype=torch.int64)
        return {"uid": torch.from_numpy(uid), "hist": torch.from_numpy(hist),
                "hist_w": torch.from_numpy(np.ascontiguousarray(hist_w)),
                "attrs": torch.from_numpy(self.user_attrs_[users]), "interests": torch.from_numpy(interests),
                "hour": zeros, "dow": zeros}

    # --- fit ------------------------------------------------------------------------------------
    def _settings(self) -> TrainSettings:
        c = self.config
        return TrainSettings(c.epochs, c.batch_size, c.learning_rate, c.temperature, c.logq, c.extra_negatives,
                             c.pop_reg, c.id_dropout, c.context_dropout, c.query_prob, c.history,
                             c.half_life, c.patience, c.seed, self.progress, negatives=c.negatives,
                             weight_decay=c.weight_decay, mask_fraction=c.mask_fraction, lr_decay=c.lr_decay,
                             average_epochs=c.average_epochs, max_events=c.max_train_events or None,
                             sampling=c.budget_sampling)

    def build_net(self, table: ItemTable, n_items: int) -> TwoTower:
        """A fresh network with this model's shapes (seeded ``config.seed``): what fit and load
        build, and what a worker scoring the towers elsewhere builds before loading the weights."""
        c = self.config
        torch.manual_seed(c.seed)
        return TwoTower(n_items=n_items, n_categories=max(1, self.structure_.n_categories),
                        creator_buckets=c.creator_buckets, text_dim=table.text.shape[1],
                        user_buckets=c.user_buckets, attr_buckets=c.attr_buckets,
                        emb=c.embedding, hidden=c.hidden, dim=c.dim, dropout=c.dropout,
                        share_embeddings=c.share_embeddings, init_std=c.init_std, item_bias=c.item_bias,
                        pooling=c.pooling, layers=c.hidden_layers)

    def _fit(self, train: Interactions) -> None:
        c = self.config
        threads = torch.get_num_threads()
        torch.set_num_threads(c.threads)
        try:
            table = self._item_table(train)
            self._user_tables(train, table.cats)
            tensors = table.tensors()
            counts = np.bincount(train.item, minlength=train.n_items)
            epochs = c.epochs
            history: TrainHistory = {}
            fit_rows = validation_mask(train, c.validation, c.validation_quantile, seed=c.seed)
            if 0 < fit_rows.sum() < len(train):
                part = train.subset(fit_rows)
                self.net_ = self._initial_net(table, train.n_items)
                validate = self._validator(part, train.subset(~fit_rows), tensors)
                history = self._train(part, tensors, validate=validate, epochs=self._max_epochs())
                epochs = history["best_epoch"] + 1
            if not history or c.refit:
                self.net_ = self._initial_net(table, train.n_items)
                refit = self._train(train, tensors, epochs=epochs if history else self._max_epochs() or epochs)
                history["refit_seconds"] = refit["seconds"]
                history["refit_epochs"] = epochs
                history["refit_events_seen"] = refit["events_seen"]
            self.history_ = history
            self.table_ = table
            self._set_user_history(train)
            self.item_counts_ = counts.astype(np.int64)
            self._refresh_item_vectors()
        finally:
            self._warm = None  # the previous model is not kept past the fit
            self._text = None  # nor the prepared text (table_.text holds the vectors)
            torch.set_num_threads(threads)

    # --- warm start (winnow.models.two_tower.warm) ---------------------------------------------
    def start_from(self, previous: TwoTowerRecommender, *, items: tuple[np.ndarray, np.ndarray],
                   users: tuple[np.ndarray, np.ndarray]) -> Self:
        """Start the next ``fit`` from ``previous``'s weights (items / users: (new_rows, old_rows)
        of the ids it knew) with at most ``warm_epochs`` epochs. After the fit, ``warm_reason_``
        is None when it did, else why it trained cold (the network's shapes changed)."""
        self._warm = WarmStart(previous, items, users)
        return self

    def _initial_net(self, table: ItemTable, n_items: int) -> TwoTower:
        """``build_net``, then the warm-started weights when ``start_from`` was called."""
        net = self.build_net(table, n_items)
        if self._warm is not None:
            self.warm_reason_ = warm_state(net, self._warm, self.structure_.categories_, self.config.user_buckets)
        return net

    def _max_epochs(self) -> int | None:
        """``warm_epochs`` for a warm-started network, None (the configured ``epochs``) otherwise."""
        return self.config.warm_epochs if self._warm is not None and self.warm_reason_ is None else None

    def _train(self, train: Interactions, tensors: dict[str, torch.Tensor], *,
               validate: Callable[[], float] | None = None, epochs: int | None = None) -> TrainHistory:
        """One training run of ``self.net_`` on ``train`` with the configured objective."""
        c = self.config
        aux = make_sequence_loss(c, train.user, train.item, train.timestamp, tensors)
        if c.objective == "masked":
            sets = UserSets.build(train.user, train.item, train.timestamp, train.weight,
                                  n_users=train.n_users, n_items=train.n_items)
            return train_masked(self.net_, sets, tensors, self._user_inputs, self._settings(),
                                weighted=c.weighted, validate=validate, epochs=epochs, aux=aux)
        events = EventArrays.build(train.user, train.item, train.timestamp)
        return train_epochs(self.net_, events, tensors, np.bincount(train.item, minlength=train.n_items),
                            self._user_inputs, self._settings(), validate=validate, epochs=epochs, aux=aux)

    def _validator(self, part: Interactions, val: Interactions, tensors: dict[str, torch.Tensor]):
        self._set_user_history(part)
        seen = part.to_csr(binary=True)
        test = val.to_csr(binary=True)
        users = np.flatnonzero((np.diff(test.indptr) > 0) & (np.diff(seen.indptr) > 0))
        if len(users) > self.config.validation_users:
            users = np.random.default_rng(self.config.seed).choice(users, self.config.validation_users, replace=False)

        users = np.sort(users)
        catalog = validation_catalog(test, users, part.n_items, self.config.validation_items, seed=self.config.seed)
        seen_users = seen[users]

        def validate() -> float:
            vecs = item_vectors(self.net_, tensors, content_only=False, rows=catalog)
            bias = self.config.temperature * item_logit_bias(self.net_, part.n_items)[0]
            return validation_ndcg(self._history_user_vectors(users), vecs, bias if catalog is None else bias[catalog],
                                   seen_users, test, users, catalog)
        return validate

    def _set_user_history(self, train: Interactions) -> None:
        """user_hist_ int64 [n_users, history] (items + 1, oldest first) and user_hist_w_ float32
        (recency weights, times the event weight when ``weighted``): the query of a known user."""
        c = self.config
        if c.objective == "masked":
            s = UserSets.build(train.user, train.item, train.timestamp, train.weight,
                               n_users=train.n_users, n_items=train.n_items)
            user, item, weight = s.user, s.item, s.weight
        else:
            order = np.lexsort((train.timestamp, train.user))
            user, item, weight = train.user[order], train.item[order], train.weight[order]
        weight = weight if c.weighted else np.ones(len(user), np.float32)
        self.user_hist_, self.user_hist_w_ = pooled_history(user, item, weight, train.n_users,
                                                            length=c.history, half_life=c.half_life)

    def _history_user_vectors(self, users: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            out = self.net_.user(**self._user_inputs(users, self.user_hist_[users], self.user_hist_w_[users], None))
        return out.numpy()

    def user_vector(self, *, history: Sequence[int] = (), attributes: dict[str, Any] | None = None,
                    interests: Sequence[str] = (), user: int | None = None, hour: int | None = None,
                    dow: int | None = None, query: np.ndarray | None = None) -> np.ndarray:
        """One request's query vector, float32 [dim] (unit norm); comparable to ``item_vectors_``.

        history: recent item indices, oldest first (declared interest *items* go here too);
        attributes: the user's attribute dict; interests: declared categories; user: a known user
        index (None = unseen user, the "unknown id" input); hour 0-23 / dow 0-6 (Monday = 0) of
        the request; query: a text vector from ``encode_query`` folded into the query vector.
        Declared categories also add their centroid in retrieval space (the mean item vector of
        the category, popularity-weighted) to the tower's output, so a first slate follows them.
        """
        self._check_fitted()
        c = self.config
        inputs = request_inputs(c, history=history, interest_ids=self.interest_ids(list(interests)),
                                attr_ids=[stable_hash(t, c.attr_buckets) for t in attribute_tokens(attributes or {})],
                                user=user, hour=hour, dow=dow, widths=(MAX_ATTRS, MAX_INTERESTS))
        if query is not None and self.table_.text.shape[1] == len(query):
            inputs["query"] = torch.from_numpy(np.asarray(query, np.float32)[None, :])
        with torch.no_grad():
            if "query" in inputs:
                vec = self.net_.user(**inputs, query_proj=self.net_.query_proj)[0].numpy()
            else:
                vec = self.net_.user(**inputs)[0].numpy()
        cat_ids = [i - 1 for i in self.interest_ids(list(interests))]
        if cat_ids:  # declared categories: pull towards their centroid in retrieval space
            vec = vec + self.category_centroids_[cat_ids].mean(axis=0)
            vec = vec / max(float(np.linalg.norm(vec)), 1e-12)
        return vec.astype(np.float32)

    def encode_query(self, text: str) -> np.ndarray | None:
        """Text vector of a search query in the model's text space (None without text)."""
        if self.text_encoder_ is not None:
            return self.text_encoder_.encode([text])[0]
        if self.config.text_backend == "minilm" and self.table_.text.shape[1]:
            return self.text_encoder().encode([text])[0]
        return None

    def _refresh_item_vectors(self) -> None:
        tensors = self.table_.tensors()
        self.collab_vectors_ = item_vectors(self.net_, tensors, content_only=False)
        self.content_vectors_ = item_vectors(self.net_, tensors, content_only=True)
        self._blend_item_vectors()

    def _blend_item_vectors(self) -> None:
        """item_vectors_, item_bias_ and category_centroids_ from collab_vectors_ /
        content_vectors_ (set first) and the net's item bias.

        item_bias_ float32 [n_items], in score units (temperature * logit bias; zeros without
        ``item_bias``): blended like the vectors, w * own bias + (1 - w) * content-only bias."""
        self.item_vectors_ = blend_item_vectors(self.collab_vectors_, self.content_vectors_,
                                                self.item_counts_, k=self.config.item_k)
        own, content = item_logit_bias(self.net_, len(self.item_vectors_))
        w = (self.item_counts_ / (self.item_counts_ + self.config.item_k)).astype(np.float32)
        self.item_bias_ = (self.config.temperature * (w * own + (1.0 - w) * content)).astype(np.float32)
        self.category_centroids_ = category_centroids(self.table_.cats, self.item_counts_, self.item_vectors_,
                                                      self.structure_.n_categories)

    def _score(self, users: np.ndarray) -> np.ndarray:
        return self._history_user_vectors(np.asarray(users, np.int64)) @ self.item_vectors_.T + self.item_bias_

    def index_vectors(self) -> np.ndarray:
        """float32 [n_items, dim (+1)]: what an inner-product ANN index holds so that
        ``index_query(user_vector(...)) . row`` is the model's score: ``item_vectors_``, with
        ``item_bias_`` appended as a last column when the model has ``item_bias``."""
        if not self.config.item_bias:
            return self.item_vectors_
        return np.hstack([self.item_vectors_, self.item_bias_[:, None]]).astype(np.float32)

    def index_query(self, vec: np.ndarray) -> np.ndarray:
        """A ``user_vector`` [dim] as a query of ``index_vectors`` (a 1 appended with item_bias)."""
        vec = np.asarray(vec, np.float32)
        return np.r_[vec, np.float32(1.0)].astype(np.float32) if self.config.item_bias else vec

    def content_index_row(self, vec: np.ndarray) -> np.ndarray:
        """The ``index_vectors`` row of an item known by its content vector only (created after
        training): the vector, plus the content-only bias with ``item_bias``."""
        vec = np.asarray(vec, np.float32)
        if not self.config.item_bias:
            return vec
        return np.r_[vec, np.float32(self.config.temperature * item_logit_bias(self.net_, 0)[1])].astype(np.float32)

    def similar_items(self, items: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        self._check_fitted()
        items = np.asarray(items, np.int64)
        scores = self.item_vectors_[items] @ self.item_vectors_.T
        scores[np.arange(len(items)), items] = -np.inf
        return top_k(scores, k)

    # --- persistence (winnow.models.two_tower.persist) ----------------------------------------
    def save(self, directory: str | Path) -> None:
        self._check_fitted()
        save_two_tower(self, directory)

    @classmethod
    def load(cls, directory: str | Path) -> Self:
        model = load_two_tower(cls, directory)
        model._refresh_item_vectors()
        return model
