"""The two-tower's per-part costs at catalogue scale, in CPU seconds (robust to a shared machine).

    .venv/bin/python bench/two_tower_costs.py --items 1000000 --events 200000 --json F

On random towers of the default shapes (``[models.two_tower]`` defaults, text "none") over a
catalog of ``--items`` items: the training throughput of the next-item loop (one epoch of
``--events`` random events; events per CPU second), one early-stopping validation pass bounded
as shipped (``validation_items`` items, ``validation_users`` users) and the same pass over the
whole catalog (what it cost before the bound). With the budget a fit trains at most
``2 x max_train_events`` events (early-stopping run + refit), so its training part is about
``2 x max_train_events / throughput`` CPU seconds whatever the store's size.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import scipy.sparse as sp  # noqa: E402
import torch  # noqa: E402

from winnow.core.config import TwoTowerConfig  # noqa: E402
from winnow.models.two_tower.towers import TwoTower  # noqa: E402
from winnow.models.two_tower.train import EventArrays, TrainSettings, item_vectors, train_epochs  # noqa: E402
from winnow.models.two_tower.validation import validation_catalog, validation_ndcg  # noqa: E402


def _clock(fn):
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, round(time.perf_counter() - w, 2), round(time.process_time() - c, 2)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=1_000_000)
    ap.add_argument("--users", type=int, default=500_000)
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--json", required=True)
    args = ap.parse_args()
    torch.set_num_threads(1)
    c = TwoTowerConfig()
    rng = np.random.default_rng(0)
    n, nu = args.items, args.users
    torch.manual_seed(0)
    net = TwoTower(n_items=n, n_categories=50, creator_buckets=c.creator_buckets, text_dim=0,
                   user_buckets=c.user_buckets, attr_buckets=c.attr_buckets, emb=c.embedding, hidden=c.hidden,
                   dim=c.dim)
    items = {"cats": torch.from_numpy(rng.integers(0, 51, (n, 8))), "creator": torch.from_numpy(rng.integers(0, 4096, n)),
             "age": torch.from_numpy(rng.integers(0, 10, n)), "pop": torch.from_numpy(rng.integers(0, 10, n)),
             "text": torch.zeros(n, 0)}
    pop = rng.zipf(1.3, args.events) % n
    ev = EventArrays.build(rng.integers(0, nu, args.events), pop, rng.integers(1.6e9, 1.7e9, args.events))

    def user_inputs(users, hist, hist_w, r):
        z = torch.zeros(len(users), dtype=torch.int64)
        return {"uid": torch.from_numpy(1 + users % (c.user_buckets - 1)), "hist": torch.from_numpy(hist),
                "hist_w": torch.from_numpy(np.ascontiguousarray(hist_w)), "attrs": torch.zeros(len(users), 12, dtype=torch.int64),
                "interests": torch.zeros(len(users), 6, dtype=torch.int64), "hour": z, "dow": z}

    st = TrainSettings(1, c.batch_size, c.learning_rate, c.temperature, c.logq, c.extra_negatives, c.pop_reg,
                       c.id_dropout, c.context_dropout, c.query_prob, c.history, c.half_life, c.patience, 0, False)
    counts = np.bincount(pop, minlength=n)
    _, tw, tc = _clock(lambda: train_epochs(net, ev, items, counts, user_inputs, st))
    out = {"items": n, "events": args.events, "load_before": os.getloadavg(),
           "train_epoch": {"wall_s": tw, "cpu_s": tc, "events_per_cpu_s": round(args.events / max(tc, 1e-9))}}
    net.eval()
    vu = np.arange(c.validation_users)
    u = rng.normal(size=(len(vu), c.dim)).astype(np.float32)
    def per_user(k: int) -> sp.csr_matrix:  # k random items per validation user
        rows, cols = np.repeat(vu, k), rng.integers(0, n, len(vu) * k)
        m = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(len(vu), n))
        m.sum_duplicates()
        return m

    seen, test = per_user(20), per_user(5)
    for name, cap in (("bounded", c.validation_items), ("whole_catalog", n)):
        cat = validation_catalog(test, vu, n, cap, seed=0)
        vecs, vw, vc = _clock(lambda: item_vectors(net, items, content_only=False, rows=cat))
        bias = np.zeros(len(vecs), np.float32)
        _, sw, sc = _clock(lambda: validation_ndcg(u, vecs, bias, seen, test, vu, cat))
        out[f"validation_{name}"] = {"items_ranked": len(vecs), "item_tower_wall_s": vw, "item_tower_cpu_s": vc,
                                     "score_wall_s": sw, "score_cpu_s": sc}
        print(name, out[f"validation_{name}"], flush=True)
    out["load_after"] = os.getloadavg()
    print(json.dumps(out["train_epoch"]))
    Path(args.json).write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
