"""Position bias, measured: the learned ranker trained on a position-biased log, with and without
a correction (winnow.models.position_bias), scored on the simulator's TRUE engagement.

1. Log: ``log_rounds`` rounds of the closed loop (winnow.simulation.loop) under a logging
   policy (default softmax over the ALS ranking: the service's exploration) -- ALS fitted on
   every click so far, candidates = ALS top ``pool`` + ``fresh`` newest items, the policy picks
   a slate of k, users click with examine(j) = 1 / (1 + j) ** eta (winnow.simulation.users).
   Each shown item is a logged row: its slate, position, click, and the two sources' score and
   rank (the retrieval model's, named after it, e.g. ``als``; ``fresh``: minus the item's age in rounds), as the service logs them.
2. Features: the product's point-in-time ranker features (winnow.features: ``fit_spec``,
   ``FeatureCatalog``, ``offline_features``) over a Dataset of every click (round r's clicks at
   ``(r + 1) * DAY + 1``; slates at ``(r + 1) * DAY``; items' categories = their topic, created_at
   = their release round), so the ranker sees what the served ranker sees.
3. Rankers: one ``LambdaRanker`` per correction mode on the SAME rows (lists with a click; 20% of
   users held out for early stopping, seeded), with ``[ranker]``'s hyper-parameters.
4. Truth: in the state after the log, every user's candidates are scored by each ranker; the
   top k is evaluated with the simulator's click probabilities WITHOUT position bias
   (``click_prob(examined=True)``): ``true_engagement`` = mean over users of the sum of the top k's
   true click probabilities; ``expected_clicks`` = the same weighted by examine(j) (what the
   slate would earn when shown in that order). The curve each correction estimated is reported
   next to the simulator's examine(j) / examine(0).
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from winnow.core.config import WinnowConfig
from winnow.core.ids import IdMap
from winnow.data.interactions import Dataset, Interactions
from winnow.features import FeatureCatalog, Lists, fit_spec, offline_features
from winnow.features.spec import DAY
from winnow.models.position_bias import correction
from winnow.models.ranker import LambdaRanker
from winnow.pipeline.explore import build_policy
from winnow.simulation.loop import _sim_config, candidate_lists, fit_model, policy_spec, serve
from winnow.simulation.users import SimulationConfig, UserWorld


def _rows(world: UserWorld, model: Any, cands: np.ndarray, users: np.ndarray,
          items: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per (user, item) row: the model's score / rank (NaN where it did not propose the row) and fresh score /
    rank (NaN where the fresh source did not). ``cands``: candidate_lists' output (als top pool, then fresh)."""
    c = world.config
    scores = np.asarray(model.scores(np.arange(c.n_users)), np.float64)
    rank = np.full((c.n_users, c.n_items), np.nan)
    fresh_rank = np.full((c.n_users, c.n_items), np.nan)
    for u in range(c.n_users):
        row = cands[u][cands[u] >= 0]
        n_als = min(c.pool, int((cands[u][: c.pool] >= 0).sum()))
        rank[u, row[:n_als]] = np.arange(n_als)
        fresh_rank[u, row[n_als:]] = np.arange(len(row) - n_als)
    als_rank = rank[users, items]
    als_score = np.where(np.isnan(als_rank), np.nan, scores[users, items])
    f_rank = fresh_rank[users, items]
    f_score = np.where(np.isnan(f_rank), np.nan, -(world.round - world.release_round[items]).astype(np.float64))
    return als_score, als_rank, f_score, f_rank


def _dataset(world: UserWorld, users: np.ndarray, items: np.ndarray, ts: np.ndarray) -> Dataset:
    c = world.config
    inter = Interactions.from_arrays(users, items, timestamp=ts, n_users=c.n_users, n_items=c.n_items)
    frame = pd.DataFrame({"item_id": [str(i) for i in range(c.n_items)], "title": "", "text": "",
                          "categories": [[f"topic{t}"] for t in world.item_topic], "creator": "",
                          "created_at": (world.release_round * DAY).astype(np.int64),
                          "available": True, "sponsored": False,
                          "attributes": [{} for _ in range(c.n_items)]})
    return Dataset("posbias-sim", inter, IdMap("user", [str(u) for u in range(c.n_users)]),
                   IdMap("item", [str(i) for i in range(c.n_items)]), items=frame)


def _lists(user: np.ndarray, t: np.ndarray, row_list: np.ndarray, row_item: np.ndarray,
           src: Sequence[np.ndarray], model: str) -> Lists:
    return Lists(user=user, t=t, row_list=row_list, row_item=row_item,
                 src_score={model: src[0], "fresh": src[2]}, src_rank={model: src[1], "fresh": src[3]})


def posbias_study(config: SimulationConfig, *, logging: str | Mapping[str, Any] = "softmax",
                  log_rounds: int = 4, requests: int = 1, modes: Sequence[str] = ("none", "ips", "lambdarank"),
                  model: str = "als", winnow_config: WinnowConfig | None = None,
                  trees: int | None = None) -> dict[str, Any]:
    """Steps 1-4 of the module docstring; ``requests`` slates per user and round (fresh
    exploration seeds, same state). Returns {"config", "logging", "rows", "lists", "true_curve",
    "modes": {mode: {"true_engagement", "expected_clicks", "curve" (estimated, or None),
    "best_iteration", "fit_seconds"}}, "greedy": {...} (the retrieval model's own top k)}."""
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    wcfg = _sim_config(winnow_config)
    rc = wcfg.ranker
    # the study never reads the logged propensities: 1 Monte Carlo draw (the slate is drawn
    # before them, so it is the same slate as with more)
    spec_p = {"n_mc": 1, **policy_spec(logging)} if policy_spec(logging).get("kind") in ("softmax", "thompson") \
        else policy_spec(logging)
    world = UserWorld(config)
    ou, oi = world.organic_log()
    ev_u, ev_i, ev_t = [ou], [oi], [np.zeros(len(ou), np.int64)]
    rows: dict[str, list[np.ndarray]] = {k: [] for k in ("list", "item", "pos", "click", "as", "ar", "fs", "fr")}
    list_user, list_t = [], []
    n_lists = 0
    for r in range(log_rounds):
        m, train = fit_model(model, world, np.concatenate(ev_u), np.concatenate(ev_i), wcfg)
        cands = candidate_lists(m, world, train.to_csr(binary=True))
        pol = build_policy(spec_p)
        t_r = (r + 1) * DAY
        for q in range(requests):
            served = serve(pol, cands, k=config.k, round_=r, salt=f"posbias{q}:")
            ok = served.items >= 0
            clicks = world.respond(served.users, np.where(ok, served.items, 0)) & ok
            uu = np.repeat(served.users, config.k).reshape(ok.shape)
            lid = n_lists + np.repeat(np.arange(len(served.users)), config.k).reshape(ok.shape)
            pos = np.tile(np.arange(config.k), (len(served.users), 1))
            a_s, a_r, f_s, f_r = _rows(world, m, cands, uu[ok], served.items[ok])
            for key, val in (("list", lid[ok]), ("item", served.items[ok]), ("pos", pos[ok]),
                             ("click", clicks[ok]), ("as", a_s), ("ar", a_r), ("fs", f_s), ("fr", f_r)):
                rows[key].append(val)
            list_user.append(served.users)
            list_t.append(np.full(len(served.users), t_r, np.int64))
            n_lists += len(served.users)
            ev_u.append(uu[clicks].astype(np.int32))
            ev_i.append(served.items[clicks].astype(np.int32))
            ev_t.append(np.full(int(clicks.sum()), t_r + 1 + q, np.int64))
        world.step()
    R = {k: np.concatenate(v) for k, v in rows.items()}
    # rows of a slate in a random order, as impression_lists gives them: tied scores of a young
    # ranker must not borrow the shown order (which predicts clicks through position bias)
    shuffle = np.lexsort((np.random.default_rng(config.seed + 7).random(len(R["list"])), R["list"]))
    R = {k: v[shuffle] for k, v in R.items()}
    l_user, l_t = np.concatenate(list_user).astype(np.int64), np.concatenate(list_t)
    users_all, items_all, ts_all = (np.concatenate(a) for a in (ev_u, ev_i, ev_t))
    ds = _dataset(world, users_all, items_all, ts_all)
    spec = fit_spec(ds, [model, "fresh"], half_life_s=rc.half_life_days * DAY)
    catalog = FeatureCatalog.from_dataset(ds, spec)
    # lists with a click (lambdarank needs a positive), rows renumbered contiguously
    y_all = R["click"].astype(np.float32)
    positive = np.bincount(R["list"], weights=y_all, minlength=n_lists) > 0
    keep = positive[R["list"]]
    renumber = np.cumsum(positive) - 1
    row_list = renumber[R["list"][keep]]
    lu, lt = l_user[positive], l_t[positive]
    lists = _lists(lu, lt, row_list, R["item"][keep], [R[k][keep] for k in ("as", "ar", "fs", "fr")], model)
    x = offline_features(ds.interactions, catalog, spec, lists)
    y, position = y_all[keep], R["pos"][keep]
    valid_user = np.random.default_rng(rc.seed).random(config.n_users) < rc.valid_share
    va_list = valid_user[lu]
    tr, va = ~va_list[row_list], va_list[row_list]
    g_tr = np.bincount(row_list[tr], minlength=len(lu))[~va_list]
    g_va = np.bincount(row_list[va], minlength=len(lu))[va_list]
    params = {"learning_rate": rc.learning_rate, "num_leaves": rc.num_leaves,
              "min_data_in_leaf": rc.min_data_in_leaf, "feature_fraction": rc.feature_fraction,
              "lambdarank_truncation_level": rc.truncation_level}
    # truth: the state after the log, every user's candidates
    m, train = fit_model(model, world, users_all, items_all, wcfg)
    cands = candidate_lists(m, world, train.to_csr(binary=True))
    ok = cands >= 0
    e_list = np.repeat(np.arange(config.n_users), cands.shape[1]).reshape(cands.shape)[ok]
    e_item = cands[ok]
    e_src = _rows(world, m, cands, e_list, e_item)
    t_eval = (log_rounds + 1) * DAY
    e_x = offline_features(ds.interactions, catalog, spec,
                           _lists(np.arange(config.n_users, dtype=np.int64), np.full(config.n_users, t_eval, np.int64),
                                  e_list, e_item, e_src, model))
    truth = world.click_prob(e_list, e_item[:, None], examined=True)[:, 0]

    def evaluate(score: np.ndarray) -> dict[str, float]:
        order = np.lexsort((-score, e_list))
        first = np.searchsorted(e_list[order], np.arange(config.n_users))
        rank = np.arange(len(order)) - first[e_list[order]]
        top = rank < config.k
        p = truth[order][top]
        w = world.examine[rank[top]]
        return {"true_engagement": float(p.sum() / config.n_users),
                "expected_clicks": float((p * w).sum() / config.n_users)}

    out: dict[str, Any] = {
        "config": config.to_dict(), "logging": spec_p, "log_rounds": log_rounds, "requests": requests,
        "rows": int(len(y)), "lists": int(len(lu)), "clicks": int(y.sum()),
        "true_curve": [float(v) for v in world.examine / world.examine[0]], "modes": {},
        "greedy": evaluate(-np.nan_to_num(e_src[1], nan=1e9))}
    for mode in modes:
        t0 = time.perf_counter()
        bias = correction(mode, x[tr], y[tr], position[tr], seed=rc.seed)
        ranker = LambdaRanker(spec, params=params, num_boost_round=trees or rc.num_boost_round,
                              early_stopping_rounds=rc.early_stopping_rounds, seed=rc.seed,
                              num_threads=rc.threads, init_weights=rc.init_weights)
        if trees:  # a fixed tree count: the validation users' lists are simply not used
            ranker.fit(x[tr], y[tr], g_tr, bias=bias)
        else:
            ranker.fit(x[tr], y[tr], g_tr, valid=(x[va], y[va], g_va), bias=bias, valid_position=position[va])
        res = evaluate(ranker.predict(e_x))
        out["modes"][mode] = {**res, "curve": bias.report.get("examination"),
                              "best_iteration": ranker.best_iteration_,
                              "fit_seconds": time.perf_counter() - t0}
    return out
