"""The stacked ranker: retrieval candidates from several models, ranked by LightGBM, offline.

Not the funnel the service runs (that is winnow.pipeline.Pipeline, measured offline by
bench/funnel.py through winnow.offline): ``StackedRanker`` is (a) how `winnow train` fits the
service's learned ranker -- ``training.served_ranker`` builds its training lists and fits it
here, then keeps only the ranker (``ranker_``, ``catalog_``) for the bundle -- and (b), used on
its own (``StackedRanker.recommend``), the offline stacked-ranker experiment: candidates from
the retrieval models scored in bulk, without the pipeline's quotas, backfill, rules or online
features (bench/stacked_ranker.py; batch-recommend ``--model stacked`` and ``--engine ray``).

Fitting (the stacking recipe, so the ranker learns on candidates it will really see):
1. Carve ``inner_folds`` inner splits from the training part (``ranker.inner_split``: per-user
   random ``inner_ratio`` with seeds seed, seed + 1, ... for random protocols; time cutoffs at
   the ``inner_ratio``, ``inner_ratio - 0.1``, ... quantiles for temporal ones, labels = every
   training event after the cutoff). Each inner train part is a "state"; its held-out part
   gives labels; the lists of all folds are stacked.
2. Fit every retrieval source on the state, propose ``per_source`` candidates per user, label
   them with the held-out part, and compute point-in-time features as of each list's time t
   (``as_of``) from the state's events before t.
3. Hold out ``valid_share`` of the users' lists for early stopping (whole lists, seeded), fit
   LightGBM lambdarank. Only validation data chooses the number of trees. With ``cv_models``
   > 1 this is done for that many different held-out user sets, and the ranker kept is refit
   on every labelled list with the mean of their best iterations (one model, as served).
4. Refit every retrieval source on the full training part; recommending = candidates from those,
   features as of t from the full training events, ranker scores, top-k.
Lists without any positive are dropped from ranker training (they carry no lambdarank gradient).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from winnow.components import ranker_models
from winnow.core.config import RankerConfig, WinnowConfig
from winnow.core.errors import NotFittedError, WinnowError
from winnow.data.interactions import Dataset, Interactions
from winnow.evaluation.drift_profile import ranker_profile
from winnow.evaluation.splits import validation_split
from winnow.features import FeatureCatalog, Lists, fit_spec, offline_features
from winnow.features.offline import OfflineFeatures
from winnow.features.spec import DAY, FeatureSpec
from winnow.models.base import Recommender
from winnow.models.position_bias import Correction, correction
from winnow.models.ranker import LambdaRanker
from winnow.models.registry import build_model
from winnow.features.impression_lists import ImpressionLists
from winnow.training.ranker_data import (
    CandidateLists,
    generate_candidates,
    label_lists,
    list_times,
)

MIN_RANKER_LISTS = 10  # fewer labelled lists (train or validation) than this: no ranker
PROFILE_ROWS = 50_000  # training rows the ranker's drift reference is computed on (seeded sample)


class InsufficientRankerData(WinnowError):
    """Too few users with held-out positives to train and validate a ranker."""


def effective_sources(config: WinnowConfig, n_items: int, say=None) -> list[str]:
    """``ranker.sources`` without EASE when it cannot fit this catalog here (above
    ``models.ease.max_items`` or more memory than is available: ``ease.memory_refusal``);
    ``say`` is told why it stepped aside."""
    from winnow.models.ease import memory_refusal

    why = memory_refusal(n_items, config.models.ease.max_items) if "ease" in config.ranker.sources else None
    if why and say is not None:
        say(f"source ease steps aside: {why}")
    return [s for s in config.ranker.sources if not (s == "ease" and why)]


def served_ranker_config(config: WinnowConfig) -> tuple[WinnowConfig, dict[str, str]]:
    """The ranker config for the service: its sources are the pipeline's sources that a retrieval
    model backs (each component's ``model``: als, itemitem, sequence, popularity, trending), named as in the pipeline so the served
    ranker reads the request's source scores by name; only proposed items carry a source score
    (``dense_scores = False``), as in serving."""
    mapping = ranker_models(config.pipeline)
    quota = max([s.quota for s in config.pipeline.sources if s.name in mapping] or [config.ranker.per_source])
    rc = config.ranker.model_copy(update={"sources": list(mapping), "dense_scores": False,
                                          "per_source": min(quota, 200), "inner_folds": 1})
    return config.model_copy(update={"ranker": rc}), mapping


def fit_sources(train: Interactions, config: WinnowConfig, names: list[str],
                models: dict[str, str] | None = None) -> dict[str, Recommender]:
    """Every retrieval source, fitted on ``train``; ``models`` maps a source name to the
    registry model behind it (default: the same name)."""
    models = models or {}
    return {name: build_model(models.get(name, name), config).fit(train) for name in names}


def cap_lists(n: int, cap: int, seed: int) -> np.ndarray | None:
    """Sorted positions of ``cap`` of ``n`` lists drawn uniformly without replacement (seeded),
    or None when ``n <= cap`` (every list is kept)."""
    if n <= cap:
        return None
    return np.sort(np.random.default_rng(seed).choice(n, cap, replace=False))


def split_lists(y: np.ndarray, row_list: np.ndarray, list_user: np.ndarray, n_lists: int, *,
                n_users: int, valid_share: float, seed: int
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Ranker train/validation rows by held-out USERS (every list of a validation user stays out
    of training; lists without a positive are dropped). Returns (train row mask, valid row mask,
    train group sizes, valid group sizes); rows of a list must be contiguous."""
    keep_list = np.bincount(row_list, weights=y, minlength=n_lists) > 0
    valid_user = np.random.default_rng(seed).random(n_users) < valid_share
    valid_list = keep_list & valid_user[list_user]
    train_list = keep_list & ~valid_list
    tr, va = train_list[row_list], valid_list[row_list]
    groups_tr = np.bincount(row_list[tr], minlength=n_lists)[train_list]
    groups_va = np.bincount(row_list[va], minlength=n_lists)[valid_list]
    return tr, va, groups_tr, groups_va


@dataclass
class StackedRanker:
    """Retrieval sources + learned ranker over a dataset's catalog (dense internal indices): the
    offline stacked ranker (module docstring), not the served pipeline."""

    dataset: Dataset
    config: WinnowConfig
    source_models: dict[str, str] = field(default_factory=dict)  # source name -> registry model
    # computes the candidate lists' point-in-time features: ``offline_features``, or an engine's
    # (winnow.engine: ``engine.offline_features``, e.g. on Ray Data; same result)
    features: OfflineFeatures = offline_features
    sources_: dict[str, Recommender] = field(default_factory=dict)
    ranker_: LambdaRanker | None = None
    catalog_: FeatureCatalog | None = None
    train_: Interactions | None = None
    report_: dict[str, Any] = field(default_factory=dict)
    profile_: dict[str, Any] | None = None  # drift reference of the ranker (drift_profile.ranker_profile)
    row_t_: np.ndarray | None = None  # impression lists: each training row's slate time (int64 [n])

    @property
    def rcfg(self) -> RankerConfig:
        return self.config.ranker

    def _features_with(self, spec: FeatureSpec, state: Interactions, cands: CandidateLists) -> np.ndarray:
        """Point-in-time features of candidate lists whose as-of times come from ``state``."""
        assert self.catalog_ is not None
        t = list_times(state, cands.users, self.rcfg.as_of)
        lists = Lists(user=cands.users, t=t, row_list=cands.row_list, row_item=cands.row_item,
                      src_score=cands.src_score, src_rank=cands.src_rank)
        return self.features(state, self.catalog_, spec, lists)

    def _features(self, state: Interactions, cands: CandidateLists) -> np.ndarray:
        assert self.ranker_ is not None
        return self._features_with(self.ranker_.spec, state, cands)

    def ranker_lists(self, train: Interactions, spec: FeatureSpec, say=None
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
        """Labelled candidate lists from ``inner_folds`` inner splits of ``train``:
        (x float32 [n, F], y float32 [n], row_list int64 [n] (contiguous), list_user int64 [L],
        number of held-out pairs)."""
        rc = self.rcfg
        say = say or (lambda _msg: None)
        folds = rc.inner_folds
        xs, ys, list_ids, list_users = [], [], [], []
        n_lists = n_held = eligible = 0
        for fold in range(folds):
            if rc.inner_split == "temporal":  # cutoffs at inner_ratio, inner_ratio - 0.1, ...
                q = rc.inner_ratio - 0.1 * fold
                if q <= 0.05:
                    break
                inner = validation_split(train, "temporal", quantile=q)
            else:
                inner = validation_split(train, "stratified", ratio=rc.inner_ratio, seed=rc.seed + fold)
            state, held = inner.train, inner.test
            say(f"fold {fold + 1}/{folds}: retrieval on the inner split, candidates, features")
            inner_models = fit_sources(state, self.config, list(spec.sources), self.source_models)
            state_csr = state.to_csr(binary=True)
            has_label = np.diff(held.to_csr(binary=True).indptr) > 0
            users = np.flatnonzero(has_label & (np.diff(state_csr.indptr) > 0))
            if len(users) == 0:
                continue
            eligible += len(users)
            pick = cap_lists(len(users), -(-rc.max_lists // folds), rc.seed + fold)
            if pick is not None:
                say(f"fold {fold + 1}: {len(pick):,} of {len(users):,} users' lists ([ranker] max_lists)")
                users = users[pick]
            cands = generate_candidates(inner_models, users, state_csr, per_source=rc.per_source,
                                        dense_scores=rc.dense_scores)
            n_held += int(held.to_csr(binary=True)[users].nnz)  # held-out pairs of these users
            y = label_lists(cands, held)
            # a list without a positive carries no lambdarank gradient: drop it before its features
            positive = np.bincount(cands.row_list, weights=y, minlength=len(users)) > 0
            cands, y = cands.keep_lists(positive), y[positive[cands.row_list]]
            if len(cands.users) == 0:
                continue
            say(f"fold {fold + 1}: features for {len(cands):,} rows in {len(cands.users):,} lists with a positive")
            xs.append(self._features_with(spec, state, cands))
            ys.append(y)
            list_ids.append(cands.row_list + n_lists)
            list_users.append(cands.users)
            n_lists += len(cands.users)
        self.lists_eligible_ = eligible
        if not xs:
            raise InsufficientRankerData("no user has events on both sides of the inner split")
        return (np.vstack(xs), np.concatenate(ys), np.concatenate(list_ids),
                np.concatenate(list_users), n_held)

    def impression_training(self, train: Interactions, spec: FeatureSpec, logged: ImpressionLists
                            ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int, np.ndarray]:
        """``ranker_lists``' tuple from logged slates, plus each row's shown position (int64 [n]),
        the position-bias correction's input: source features as logged at serving
        time (NaN for a spec source the slate did not run), every other feature point-in-time
        from ``train``'s events before each slate's timestamp."""
        assert self.catalog_ is not None
        self.lists_eligible_ = len(logged)
        pick = cap_lists(len(logged), self.rcfg.max_lists, self.rcfg.seed)
        if pick is not None:
            logged = logged.subset(pick)
        self.row_t_ = logged.t[logged.row_list]  # each row's slate time: the drift reference's feature window
        x = offline_features(train, self.catalog_, spec, logged.feature_lists(spec))
        return (x, logged.label.astype(np.float32), logged.row_list, logged.user, int((logged.label > 0).sum()),
                logged.position)

    def fit(self, train: Interactions, *, progress=None,
            impressions: ImpressionLists | None = None,
            fitted: dict[str, Recommender] | None = None) -> StackedRanker:
        """Fit the funnel on ``train`` only (see module docstring). ``impressions``: labelled
        logged slates (``features.impression_lists``) to train the ranker on instead of lists
        carved from history; the retrieval sources are still fitted on ``train``. ``fitted``:
        source name -> a model ALREADY fitted on ``train`` (step 4 reuses it instead of fitting
        the same model again; ``winnow train`` passes the models it writes to the bundle)."""
        rc = self.rcfg
        say = progress or (lambda _msg: None)
        t0 = time.perf_counter()
        sources = effective_sources(self.config, train.n_items, say)
        spec = fit_spec(self.dataset, sources, half_life_s=rc.half_life_days * DAY)
        self.catalog_ = FeatureCatalog.from_dataset(self.dataset, spec)
        position = None  # shown positions: lists from the impression log only
        if impressions is not None:
            say(f"ranker lists from the impression log: {len(impressions):,} labelled slates")
            x, y, row_list, list_user, n_held, position = self.impression_training(train, spec, impressions)
        else:
            x, y, row_list, list_user, n_held = self.ranker_lists(train, spec, say)
        n_lists = len(list_user)
        params = {"learning_rate": rc.learning_rate, "num_leaves": rc.num_leaves,
                  "min_data_in_leaf": rc.min_data_in_leaf, "feature_fraction": rc.feature_fraction,
                  "lambdarank_truncation_level": rc.truncation_level}
        iterations, valid_ndcgs = [], []
        for m in range(rc.cv_models):
            tr, va, groups_tr, groups_va = split_lists(y, row_list, list_user, n_lists,
                                                       n_users=self.dataset.interactions.n_users,
                                                       valid_share=rc.valid_share, seed=rc.seed + m)
            if m > 0 and min(len(groups_tr), len(groups_va)) < MIN_RANKER_LISTS:
                continue  # an extra validation split this small says nothing: the first decides
            train_list_count, valid_list_count = len(groups_tr), len(groups_va)
            if min(train_list_count, valid_list_count) < MIN_RANKER_LISTS:
                raise InsufficientRankerData(
                    f"ranker needs >= {MIN_RANKER_LISTS} labelled lists for training and for validation, "
                    f"got {train_list_count} and {valid_list_count} (too few users with enough events)")
            say(f"training ranker {m + 1}/{rc.cv_models} on {int(tr.sum()):,} rows in {train_list_count:,} lists")
            ranker = LambdaRanker(spec, params=params, num_boost_round=rc.num_boost_round,
                                  early_stopping_rounds=rc.early_stopping_rounds, seed=rc.seed + m,
                                  num_threads=rc.threads, init_weights=rc.init_weights)
            ranker.fit(x[tr], y[tr], groups_tr, valid=(x[va], y[va], groups_va),
                       bias=self._bias(x, y, position, tr, seed=rc.seed + m),
                       valid_position=None if position is None else position[va])
            iterations.append(ranker.best_iteration_)
            valid_ndcgs.append(float(ranker.valid_ndcg_ or 0.0))
        self.ranker_ = ranker
        if len(iterations) > 1:  # one ranker on every labelled list, with the validated tree count
            keep = np.bincount(row_list, weights=y, minlength=n_lists) > 0
            rows = keep[row_list]
            groups = np.bincount(row_list[rows], minlength=n_lists)[keep]
            rounds = max(1, int(round(float(np.mean(iterations)))))
            say(f"refitting the ranker on all {int(keep.sum()):,} lists with {rounds} trees")
            self.ranker_ = LambdaRanker(spec, params=params, num_boost_round=rounds, seed=rc.seed,
                                        num_threads=rc.threads, init_weights=rc.init_weights
                                        ).fit(x[rows], y[rows], groups,
                                              bias=self._bias(x, y, position, rows, seed=rc.seed))
            self.ranker_.valid_ndcg_ = float(np.mean(valid_ndcgs))
            train_list_count = int(keep.sum())
        inner_recall = float((y > 0).sum() / max(n_held, 1))
        self.profile_ = self._ranker_profile(x, y, "impressions" if impressions is not None else "history",
                                             row_t=self.row_t_ if impressions is not None else None)
        fitted = fitted or {}
        missing = [name for name in sources if name not in fitted]
        if missing:
            say("refitting retrieval on the full training part")
        self.sources_ = {**fit_sources(train, self.config, missing, self.source_models),
                         **{name: fitted[name] for name in sources if name in fitted}}
        self.train_ = train
        self.report_ = {"training_data": "impressions" if impressions is not None else "history",
                        "sources_used": list(sources),
                        "lists_eligible": int(self.lists_eligible_), "max_lists": rc.max_lists,
                        "inner_lists": int(n_lists), "train_lists": train_list_count,
                        "valid_lists": valid_list_count, "rows": len(y),
                        "positives": int(y.sum()), "candidate_recall_inner": inner_recall,
                        "best_iteration": self.ranker_.best_iteration_,
                        "lightgbm_threads": rc.threads,
                        "cv_best_iterations": iterations,
                        "valid_ndcg@10": self.ranker_.valid_ndcg_,
                        "cv_valid_ndcg@10": valid_ndcgs,
                        "fit_seconds": time.perf_counter() - t0,
                        "position_bias": self.ranker_.position_bias_,
                        "importance": self.ranker_.importance()[:15]}
        return self

    def _ranker_profile(self, x: np.ndarray, y: np.ndarray, labels: str, *,
                        row_t: np.ndarray | None = None) -> dict[str, Any]:
        """The fitted ranker's drift reference on (at most ``PROFILE_ROWS`` of) its training rows.
        ``row_t`` (int64 [n], slates' times; impression lists only): the feature quantiles are
        then taken over the rows of the last ``[drift] window_days`` of slates only (at most
        ``PROFILE_ROWS`` of them), the span the live monitor compares them with -- a longer
        training log would otherwise carry older ages and smaller lifetime counts into the
        reference than any live window of the same world shows."""
        assert self.ranker_ is not None
        pick = cap_lists(len(y), PROFILE_ROWS, self.rcfg.seed)
        xs, ys = (x, y) if pick is None else (x[pick], y[pick])
        scores = self.ranker_.predict(xs, num_threads=self.rcfg.threads or 0)
        window = None
        if row_t is not None and len(row_t):
            hi = int(row_t.max()) + 1
            lo = hi - int(self.config.drift.window_days * 86400)
            recent = np.flatnonzero(row_t >= lo)
            sub = cap_lists(len(recent), PROFILE_ROWS, self.rcfg.seed)
            window = (x[recent if sub is None else recent[sub]], (lo, hi))
        return ranker_profile(self.ranker_.spec.names, xs, ys, scores, labels=labels, feature_window=window)

    def _bias(self, x: np.ndarray, y: np.ndarray, position: np.ndarray | None, rows: np.ndarray,
              *, seed: int) -> Correction:
        """The ``[ranker] position_bias`` correction of the training ``rows``."""
        rc = self.rcfg
        return correction(rc.position_bias, x[rows], y[rows], None if position is None else position[rows],
                          max_weight=rc.position_bias_max_weight, seed=seed, num_threads=rc.threads or 1)

    def recommend(self, users: np.ndarray, k: int, *, exclude: sp.csr_matrix | None = None,
                  candidates: np.ndarray | None = None,
                  batch_size: int = 2048) -> tuple[np.ndarray, np.ndarray]:
        """Top-k per user: (items int32 [n, k], scores float32 [n, k]), -1 / -inf padded.

        ``exclude`` defaults to the training interactions; ``candidates`` restricts retrieval.
        Users are indices with >= 1 training event (others: use a cold-start model)."""
        if self.ranker_ is None or self.train_ is None:
            raise NotFittedError("StackedRanker is not fitted; call fit() first")
        users = np.asarray(users, np.int64)
        excl = exclude if exclude is not None else self.train_.to_csr(binary=True)
        out_i = np.full((len(users), k), -1, np.int32)
        out_s = np.full((len(users), k), -np.inf, np.float32)
        for start in range(0, len(users), batch_size):
            chunk = users[start:start + batch_size]
            cands = generate_candidates(self.sources_, chunk, excl, per_source=self.rcfg.per_source,
                                        allowed=candidates, dense_scores=self.rcfg.dense_scores)
            if len(cands) == 0:
                continue
            score = self.ranker_.predict(self._features(self.train_, cands),
                                         num_threads=self.rcfg.threads or 0)
            order = np.lexsort((-score, cands.row_list))
            rl = cands.row_list[order]
            first = np.searchsorted(rl, np.arange(len(chunk)))
            pos = np.arange(len(rl)) - first[rl]
            top = pos < k
            out_i[start + rl[top], pos[top]] = cands.row_item[order][top]
            out_s[start + rl[top], pos[top]] = score[order][top]
        return out_i, out_s


class StackedRankerRecommender(Recommender):
    """The stacked ranker behind the retrieval contract (name "stacked"), for batch-recommend's
    ``--model stacked`` / ``--engine ray`` path: fit(train) fits ``StackedRanker``; recommend() ranks candidates;
    ``scores`` (dense scores, used by cold-start blending) is the first source's. Not saved
    through Recommender.save: the service bundle stores the ranker (ranker.txt + ranker.json)."""

    name = "stacked"

    def __init__(self, dataset: Dataset, config: WinnowConfig) -> None:
        self.dataset = dataset
        self.config = config

    def _fit(self, train: Interactions) -> None:
        self.funnel_ = StackedRanker(self.dataset, self.config).fit(train)

    def _score(self, users: np.ndarray) -> np.ndarray:
        first = next(iter(self.funnel_.sources_.values()))
        return first.scores(users)

    def recommend(self, users: np.ndarray, k: int, *, exclude: sp.csr_matrix | None = None,
                  candidates: np.ndarray | None = None,
                  batch_size: int = 2048) -> tuple[np.ndarray, np.ndarray]:
        users = self._checked_request(users, k)
        return self.funnel_.recommend(users, min(k, self.n_items_), exclude=exclude,
                                      candidates=candidates, batch_size=batch_size)
