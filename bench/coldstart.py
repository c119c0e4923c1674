"""Cold-start and two-tower benchmarks; writes bench/results/coldstart_<part>.json, prints tables.

    .venv/bin/python bench/coldstart.py items      # ml-100k, 20% of items held out entirely
    .venv/bin/python bench/coldstart.py users      # ml-100k, 20% of users held out (0/1/3/5 known)
    .venv/bin/python bench/coldstart.py compare    # two-tower vs ALS vs EASE, three datasets
    .venv/bin/python bench/coldstart.py popreg     # two-tower popularity regulariser trade-off

Item cold start: candidates = the held-out items; users = those with >= 1 training and >= 1
held-out event. User cold start: held-out users keep only their attributes (or their first n
events, by time); the test set is the rest of their events; every catalog item is a candidate.
NDCG@10 etc. from winnow.metrics. Seeds: --seeds (default 0 1 2), means reported.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np
import pandas as pd
import scipy.sparse as sp

from winnow.core.config import load_config
from winnow.evaluation.datasets import load_named_dataset
from winnow.metrics import evaluate_recs
from winnow.evaluation.runner import evaluate_split, split_dataset
from winnow.models.base import apply_exclusions, top_k
from winnow.models.coldstart import (
    SegmentPopularity,
    blend_user_scores,
    user_attributes,
)
from winnow.models.content import StructuredContent
from winnow.models.registry import build_model
from winnow.models.two_tower import TwoTowerRecommender

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tune_two_tower import tuned_params  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
METRICS = ("ndcg@10", "recall@10", "precision@10", "map@10", "hit_rate@10", "coverage@10", "novelty@10")


def _eval(scores: np.ndarray, users: np.ndarray, test: sp.csr_matrix, train: sp.csr_matrix,
          candidates: np.ndarray | None = None, exclude: sp.csr_matrix | None = None) -> dict[str, float]:
    scores = np.array(scores, dtype=np.float32, copy=True)
    apply_exclusions(scores, users, exclude, candidates)
    recs, _ = top_k(scores, 10)
    m = evaluate_recs(recs, test, k=10, train=train, users=users, candidates=candidates)
    return {k: round(float(v), 4) for k, v in m.items() if k in METRICS}


def _content_baseline(ds, train_csr: sp.csr_matrix, users: np.ndarray) -> np.ndarray:
    """Genres + release-year profile: cosine(user's mean item profile, item profile)."""
    sc = StructuredContent().fit(ds.items, reference=0)
    cats = sc.category_matrix(list(ds.items["categories"])).toarray()
    created = pd.to_numeric(ds.items["created_at"], errors="coerce").to_numpy(np.float64, na_value=np.nan)
    years = 1970 + np.floor(created / 31_557_600)
    ybin = np.where(np.isnan(years), -1, np.clip((np.nan_to_num(years) - 1920) // 5, 0, 16)).astype(int)
    yh = np.zeros((len(years), 18))
    yh[np.arange(len(years)), ybin + 1] = 1.0
    prof = np.hstack([cats, yh])
    prof /= np.maximum(np.linalg.norm(prof, axis=1, keepdims=True), 1e-9)
    u = np.asarray(train_csr[users] @ prof)
    u /= np.maximum(np.linalg.norm(u, axis=1, keepdims=True), 1e-9)
    return u @ prof.T


def items_bench(cfg, ds, seed: int, text_backend: str) -> dict[str, dict[str, float]]:
    inter = ds.interactions
    rng = np.random.default_rng(seed)
    cold = rng.permutation(inter.n_items)[: inter.n_items // 5]
    is_cold = np.zeros(inter.n_items, bool)
    is_cold[cold] = True
    train = inter.subset(~is_cold[inter.item])
    test = inter.subset(is_cold[inter.item])
    tr, te = train.to_csr(binary=True), test.to_csr(binary=True)
    users = np.flatnonzero((np.diff(tr.indptr) > 0) & (np.diff(te.indptr) > 0))
    cands = np.sort(cold)
    out = {"random": _eval(np.random.default_rng(seed + 1).random((len(users), inter.n_items)), users, te, tr, cands),
           "content genres+year": _eval(_content_baseline(ds, tr, users), users, te, tr, cands)}
    for name in ("als", "ease"):
        m = build_model(name, cfg).fit(train)
        out[name] = _eval(m._score(users), users, te, tr, cands)
    tt_cfg = cfg.models.two_tower.model_copy(update={"text_backend": text_backend})
    t0 = time.perf_counter()
    tt = TwoTowerRecommender.from_config(tt_cfg).with_side_info(ds.items, ds.users).fit(train)
    out[f"two_tower ({text_backend})"] = {**_eval(tt._score(users), users, te, tr, cands),
                                          "fit_seconds": round(time.perf_counter() - t0, 1)}
    return out


def users_bench(cfg, ds, seed: int, known: int) -> dict[str, dict[str, float]]:
    inter = ds.interactions
    rng = np.random.default_rng(seed)
    cold = np.sort(rng.permutation(inter.n_users)[: inter.n_users // 5])
    is_cold = np.zeros(inter.n_users, bool)
    is_cold[cold] = True
    # rank of each event within its user by time: the first `known` events of cold users stay
    order = np.lexsort((inter.timestamp, inter.user))
    u_sorted = inter.user[order]
    first = np.r_[True, u_sorted[1:] != u_sorted[:-1]]
    start = np.maximum.accumulate(np.where(first, np.arange(len(order)), 0))
    rank = np.empty(len(order), np.int64)
    rank[order] = np.arange(len(order)) - start
    keep = ~is_cold[inter.user] | (rank < known)
    train, test = inter.subset(keep), inter.subset(~keep)
    tr, te = train.to_csr(binary=True), test.to_csr(binary=True)
    users = cold[np.diff(te.indptr)[cold] > 0]
    attrs = user_attributes(ds.users, inter.n_users)
    excl = tr if known else None
    pop = np.asarray(tr.sum(axis=0)).ravel()
    out = {"popularity": _eval(np.tile(pop, (len(users), 1)), users, te, tr, exclude=excl)}
    add = np.zeros((len(users), inter.n_items))
    warm_users = np.flatnonzero(~is_cold)
    for key in ("gender", "occupation", "age"):
        vals = np.array([str(min(int(a.get(key, 0)) // 10, 6)) if key == "age" else str(a.get(key, ""))
                         for a in attrs])
        for v in np.unique(vals[users]):
            seg = warm_users[vals[warm_users] == v]
            add[vals[users] == v] += np.asarray(tr[seg].sum(axis=0)).ravel() / max(len(seg), 1)
    out["segment additive (gender+occupation+age)"] = _eval(add, users, te, tr, exclude=excl)
    seg = SegmentPopularity(l2=cfg.coldstart.segment_l2, first=cfg.coldstart.segment_first).fit(train, attrs)
    seg_scores = seg.score([attrs[u] for u in users])
    out["segment_popular (ridge, winnow)"] = _eval(seg_scores, users, te, tr, exclude=excl)
    if known:
        ease = build_model("ease", cfg).fit(train)
        model_scores = ease._score(users)
        out["ease"] = _eval(model_scores, users, te, tr, exclude=excl)
        n = np.full(len(users), known)
        out["chain: ease + segment_popular"] = _eval(
            blend_user_scores(model_scores, seg_scores, n, k=cfg.coldstart.user_k), users, te, tr, exclude=excl)
    return out


def compare_bench(cfg, ds_name: str, protocol: str, ratio: float | None) -> list[dict[str, object]]:
    ds = load_named_dataset(ds_name, cfg)
    split = split_dataset(ds, protocol, seed=0, ratio=ratio)
    rows = evaluate_split(split, ["als", "ease"], cfg, k=10)
    t0 = time.perf_counter()
    tuned = tuned_params(ds_name)  # config/tuned/two_tower_<dataset>.json (bench/tune_two_tower.py)
    tt = TwoTowerRecommender.from_config(cfg.models.two_tower.model_copy(update=tuned))
    tt.with_side_info(ds.items, ds.users).fit(split.train)
    fit_s = time.perf_counter() - t0
    trc, tec = split.train.to_csr(), split.test.to_csr(binary=True)
    users = np.flatnonzero((np.diff(tec.indptr) > 0) & (np.diff(trc.indptr) > 0))
    recs, _ = tt.recommend(users, 10, exclude=trc)
    rows.append({"model": "two_tower", **evaluate_recs(recs, tec, k=10, train=trc, users=users),
                 "fit_seconds": fit_s})
    return rows


def _mean(runs: list[dict[str, dict[str, float]]]) -> dict[str, dict[str, float]]:
    return {m: {k: round(float(np.mean([r[m][k] for r in runs])), 4) for k in runs[0][m]} for m in runs[0]}


def _table(title: str, rows: dict[str, dict[str, float]]) -> None:
    cols = list(next(iter(rows.values())))
    print(f"\n{title}\n{'model':44s}" + "".join(f"{c:>14s}" for c in cols))
    for m, r in rows.items():
        print(f"{m:44s}" + "".join(f"{r[c]:>14.4f}" for c in cols))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("part", choices=["items", "users", "compare", "popreg"])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--text", default="tfidf", choices=["tfidf", "minilm", "none"])
    args = ap.parse_args(argv)
    cfg = load_config(home=Path("/tmp/winnow-bench-home"))
    RESULTS.mkdir(exist_ok=True)
    result: dict[str, object] = {"part": args.part, "seeds": args.seeds}
    if args.part == "items":
        ds = load_named_dataset("ml-100k", cfg)
        rows = _mean([items_bench(cfg, ds, s, args.text) for s in args.seeds])
        _table("Item cold start, ml-100k, 20% of items held out, candidates = held-out items", rows)
        result["items"] = rows
    elif args.part == "users":
        ds = load_named_dataset("ml-100k", cfg)
        for known in (0, 1, 3, 5):
            rows = _mean([users_bench(cfg, ds, s, known) for s in args.seeds])
            _table(f"User cold start, ml-100k, 20% of users held out, {known} known events", rows)
            result[f"known_{known}"] = rows
    elif args.part == "compare":
        for ds_name, protocol, ratio in (("ml-100k", "random", 0.75), ("ml-latest-small", "temporal", None),
                                         ("lastfm", "random", 0.8)):
            rows = compare_bench(cfg, ds_name, protocol, ratio)
            keep = {r["model"]: {k: float(r[k]) for k in (*METRICS, "fit_seconds") if k in r} for r in rows}
            _table(f"{ds_name} ({protocol}{'' if ratio is None else f' {ratio}'})", keep)
            result[ds_name] = keep
    else:
        ds = load_named_dataset("ml-100k", cfg)
        split = split_dataset(ds, "random", seed=0, ratio=0.75)
        trc, tec = split.train.to_csr(), split.test.to_csr(binary=True)
        users = np.flatnonzero((np.diff(tec.indptr) > 0) & (np.diff(trc.indptr) > 0))
        rows = {}
        for reg in (0.0, 0.5, 2.0):
            tt = TwoTowerRecommender.from_config(cfg.models.two_tower.model_copy(update={"pop_reg": reg}))
            tt.with_side_info(ds.items, ds.users).fit(split.train)
            recs, _ = tt.recommend(users, 10, exclude=trc)
            m = evaluate_recs(recs, tec, k=10, train=trc, users=users)
            rows[f"pop_reg={reg}"] = {k: round(float(v), 4) for k, v in m.items() if k in (*METRICS, "popularity@10", "gini@10")}
        _table("Two-tower popularity regulariser, ml-100k random 75/25", rows)
        result["popreg"] = rows
    suffix = f"_{args.text}" if args.part == "items" else ""
    path = RESULTS / f"coldstart_{args.part}{suffix}.json"
    path.write_text(json.dumps(result, indent=2), encoding="utf-8")
    print(f"\nwrote {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
