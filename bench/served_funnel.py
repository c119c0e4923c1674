"""Diagnosis: the served funnel through the HTTP service's own request path vs the stacked ranker.

bench/funnel.py (the README's figure) scores the served pipeline in batch mode; this bench
(stop 16) answers through ``Service.recommend`` itself, and diffs candidate sets against the
offline stacked ranker (training.stacked), so it explains the gap between the two figures.

    python bench/served_funnel.py [--seeds 0] [--data-dir ../shared/data] --json bench/results/served_funnel_ml100k.json

For each seed: the per-user random 75/25 split of ml-100k that bench/funnel.py and bench/stacked_ranker.py use; the
training part (with the catalog and user profiles) imported into a fresh home's store;
`winnow train` (shipped defaults: the pipeline's sources, the served ranker) writes and
activates a bundle; then ``Service.recommend`` -- the request path of the HTTP service, in this
process -- answers every evaluated user (k=10, the user's training items in the request's
``exclude``, ``now`` = 1 s after the last training event), and the slates are scored against
the test part with winnow.metrics, exactly as bench/stacked_ranker.py scores ``StackedRanker``. It also
records how the slates were made (fallbacks taken, candidates per request, ranker) and diffs the
candidate sets: the share of test positives among the served pipeline's candidates (the
retrieve stage's output, per source) against the share among the offline stacked ranker's
(``StackedRanker`` fitted on the same split as bench/stacked_ranker.py fits it), with both NDCG figures.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections import Counter
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("WINNOW__SECURITY__AUTH", "false")

import numpy as np  # noqa: E402

from winnow.core.config import load_config  # noqa: E402
from winnow.data.importers import Imported, import_into  # noqa: E402
from winnow.data.importers.movielens_100k import load as load_ml100k  # noqa: E402
from winnow.data.open_store import open_store  # noqa: E402
from winnow.data.training_data import dataset_from_frames  # noqa: E402
from winnow.evaluation.splits import stratified_split  # noqa: E402
from winnow.metrics import evaluate_recs  # noqa: E402

from seeded import seeded_main  # noqa: E402  (bench/)


def offline_funnel(ds, split, users: np.ndarray, seed: int, k: int) -> dict:
    """bench/stacked_ranker.py's stacked ranker on the same split (its config: ``[ranker] seed`` = split seed):
    NDCG@k and the share of test positives among its candidates (all sources, and per source)."""
    from winnow.training.stacked import StackedRanker
    from winnow.training.ranker_data import generate_candidates

    cfg = load_config(Path("/nonexistent-winnow-home"), environ={}, overrides={"ranker": {"seed": seed}})
    train_csr, test_csr = split.train.to_csr(binary=True), split.test.to_csr(binary=True)
    funnel = StackedRanker(ds, cfg).fit(split.train)
    recs, _ = funnel.recommend(users, k, exclude=train_csr)
    cands = generate_candidates(funnel.sources_, users, train_csr, per_source=cfg.ranker.per_source,
                                dense_scores=False)
    hit = np.asarray(test_csr[users[cands.row_list], cands.row_item]).ravel() > 0
    n_pos = int(test_csr[users].nnz)
    recall = {"all": float(hit.sum() / n_pos)}
    for name, ranks in cands.src_rank.items():
        recall[name] = float((hit & np.isfinite(ranks)).sum() / n_pos)
    return {f"ndcg@{k}": float(evaluate_recs(recs, test_csr, k=k, users=users, train=train_csr)[f"ndcg@{k}"]),
            "candidate_recall": recall, "candidates_mean": len(cands) / max(len(users), 1)}


def run(data_dir: Path, seed: int, k: int) -> dict:
    from winnow.serving.service import Service
    from winnow.training.job import train

    imported = load_ml100k(data_dir / "ml-100k")
    home = Path(tempfile.mkdtemp(prefix="winnow-served-"))
    cfg = load_config(home, environ={})
    ds = dataset_from_frames(imported.events, imported.items, imported.users, cfg.events, name="ml-100k")
    split = stratified_split(ds.interactions, 0.75, seed=seed)  # bench/funnel.py's split (and bench/stacked_ranker.py's)
    train_csr, test_csr = split.train.to_csr(binary=True), split.test.to_csr(binary=True)
    users = np.flatnonzero((np.diff(test_csr.indptr) > 0) & (np.diff(train_csr.indptr) > 0))
    ev = imported.events
    u_idx = ds.user_ids.encode(ev["user_id"].astype(str).tolist())
    i_idx = ds.item_ids.encode(ev["item_id"].astype(str).tolist())
    in_train = np.asarray(train_csr[u_idx, i_idx]).ravel() > 0
    store = open_store(cfg.store_url())
    try:
        import_into(store, Imported(source="ml-100k train part", events=ev[in_train].reset_index(drop=True),
                                    items=imported.items, users=imported.users))
        t0 = time.perf_counter()
        info = train(cfg, store, evaluate_models=False)
        train_s = time.perf_counter() - t0
    finally:
        store.close()
    now = float(split.train.timestamp.max()) + 1.0
    svc = Service(load_config(home, environ={}))
    recs = np.full((len(users), k), -1, np.int64)
    fallbacks: Counter[str] = Counter()
    n_cand, n_short = [], 0
    cand_hits: Counter[str] = Counter()  # test positives among the served candidates, per source and "all"
    try:
        rt = svc.runtime
        retrieve = rt.pipeline.retrieve
        seen_cands: list = []

        def recording_retrieve(request):  # the same stage, its output kept for the diff below
            cands = retrieve(request)
            seen_cands.append(cands)
            return cands

        rt.pipeline.retrieve = recording_retrieve  # type: ignore[method-assign]
        user_ext = ds.user_ids.decode(users)
        t0 = time.perf_counter()
        for r, (u, u_ext) in enumerate(zip(users, user_ext, strict=True)):
            seen = list(ds.item_ids.decode(train_csr[u].indices))
            _rt, _rid, slate = svc.recommend(str(u_ext), k=k, surface="default", exclude=seen, explain=False,
                                             categories=None, context={}, now=now)
            items = [it.item for it in slate.items]
            ext = _rt.catalog.item_ids.decode(np.asarray(items, np.int64)) if items else []
            recs[r, :len(items)] = ds.item_ids.encode(list(ext))
            fallbacks.update(slate.fallbacks)
            n_cand.append(slate.n_candidates)
            n_short += len(items) < k
            cands = seen_cands.pop()
            truth = set(test_csr[u].indices.tolist())
            ext_c = ds.item_ids.encode(list(_rt.catalog.item_ids.decode(np.asarray(cands.items, np.int64))))
            cand_hits["all"] += len(truth & set(ext_c.tolist()))
            for name, ranks in cands.source_ranks.items():
                cand_hits[name] += len(truth & set(ext_c[ranks >= 0].tolist()))
        serve_s = time.perf_counter() - t0
        ranker = type(rt.pipeline.ranker).__name__
    finally:
        svc.close()
    m = evaluate_recs(recs, test_csr, k=k, users=users, train=train_csr)
    n_pos = int(test_csr[users].nnz)
    return {"seed": seed, "users": len(users), **m, "bundle": info.version, "ranker": ranker,
            "candidate_recall": {name: v / n_pos for name, v in cand_hits.items()},
            "offline_funnel": offline_funnel(ds, split, users, seed, k),
            "fallbacks": dict(fallbacks), "short_slates": n_short,
            "candidates_mean": float(np.mean(n_cand)) if n_cand else 0.0,
            "train_seconds": train_s, "recommend_ms_per_user": 1000 * serve_s / max(len(users), 1)}


def _line(r: dict, k: int) -> str:
    off = r["offline_funnel"]
    return (f"served ndcg@{k} {r[f'ndcg@{k}']:.4f}, candidate recall {r['candidate_recall']['all']:.3f} "
            f"({r['candidates_mean']:.0f} per user; ranker {r['ranker']}, fallbacks {r['fallbacks']}) | "
            f"stacked ranker ndcg@{k} {off[f'ndcg@{k}']:.4f}, candidate recall {off['candidate_recall']['all']:.3f} "
            f"({off['candidates_mean']:.0f} per user)")


def main(argv: list[str] | None = None) -> int:
    return seeded_main(__doc__, run, _line, argv)


if __name__ == "__main__":
    raise SystemExit(main())
