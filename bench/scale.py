"""Capacity figures for docs/SCALING.md, measured on this machine.

    python bench/scale.py --part training|ingest|replicas|ann|all [--json-dir bench/results]

Each part writes ``scale_<part>.json`` and prints a table. Heavy: run once, under ``nice``.

- training: the synthetic world at ``--items`` x ``--events`` (bench/synthetic.py's generator),
  then the local engine vs the Ray engine (``--workers`` Ray workers) on the parts of
  ``winnow train`` that grow with data: the Parquet export of the event log, the ranker's
  point-in-time feature job (candidate lists of a ``--feature-users`` sample, features over ALL
  events), two-tower training (next-item objective, 1 epoch + refit, on the events of a
  ``--tt-share`` user sample, text_backend "none"); ALS (local in both engines) with
  ``--als-iterations``. Full-scale hours are extrapolated linearly from these parts (the JSON
  says which figure is measured and which is extrapolated, and how).
- ann: faiss IVF-PQ at ``--n`` x ``--dim`` (memory = serialised index bytes, build time,
  recall@10 vs exact, 1-thread latency) and faiss HNSW bytes/vector at ``--hnsw-n``; HNSW
  recall/latency at 1M are bench/ann.py's (bench/results/ann.json), whose data generator and
  exact ground truth this part imports.
- ingest: events/s into PostgreSQL through the PostgreSQL store (bench/store.py's run_postgres
  on a throwaway server from tests/servers/postgres.py).
- replicas: requests/s of 1 vs 2 `winnow serve` processes sharing PostgreSQL + Redis (wrk);
  a small catalog (``--rep-*``), the point is 1 vs 2 replicas on one PostgreSQL + Redis.
- batch: (1) ``winnow batch-recommend``'s function end to end, local vs ``--engine ray``
  (``--workers``) on a ``--batch-users`` x ``--batch-items`` x ``--batch-events`` world, every
  user, k = 20, model ``--batch-model``; the two CSVs are compared (same rows, scores allclose);
  (2) two-tower item-tower scoring of ``--tower-items`` items: local (``item_vectors``, 1 torch
  thread) vs Ray Data (winnow.engine.ray_batch.ray_item_vectors), outputs compared.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import importlib.util  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def _bench_module(name: str):
    """Another bench script, imported by path (bench/ is not a package)."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "bench" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def _env() -> dict:
    return {"python": platform.python_version(), "cpus": os.cpu_count(), "loadavg": os.getloadavg()}


def _clock():
    t, c = time.perf_counter(), time.process_time()
    return lambda: (round(time.perf_counter() - t, 2), round(time.process_time() - c, 2))


# --- training ------------------------------------------------------------------------------------
def part_training(args: argparse.Namespace) -> dict:
    import ray

    from winnow.core.config import load_config
    from winnow.data.synthetic import generate_world
    from winnow.data.training_data import dataset_from_frames
    from winnow.engine import open_engine
    from winnow.engine.parquet_export import export_events
    from winnow.engine.ray_features import ray_offline_features
    from winnow.features import FeatureCatalog, Lists, fit_spec, offline_features
    from winnow.models.registry import build_model
    from winnow.models.two_tower import TwoTowerRecommender
    from winnow.training.ranker_data import generate_candidates, list_times

    home = Path(tempfile.mkdtemp(prefix="winnow-scale-"))
    cfg = load_config(home, overrides={"training": {"num_workers": args.workers, "partitions": 4 * args.workers},
                                       "models": {"als": {"iterations": args.als_iterations}}})
    out: dict = {"part": "training", "users": args.users, "items": args.items, "events": args.events,
                 "workers": args.workers, "env": _env(), "measured": {}, "extrapolated": {}}
    m = out["measured"]
    partial = args.json_dir / "scale_training.partial.json"  # rewritten after every step

    def save() -> None:
        args.json_dir.mkdir(parents=True, exist_ok=True)
        partial.write_text(json.dumps(out, indent=2, default=str), encoding="utf-8")
    clock = _clock()
    world = generate_world(args.users, args.items, args.events, seed=0)
    m["generate_s"] = clock()[0]
    clock = _clock()
    ds = dataset_from_frames(world.events, world.items, world.users, cfg.events, name="scale")
    inter = ds.interactions
    m["dataset_s"] = clock()[0]
    del world
    print(f"world: {inter.n_users} users x {inter.n_items} items x {len(inter)} events", flush=True)

    clock = _clock()
    export_events(inter, home / "export", partitions=cfg.training.partitions)
    m["parquet_export_s"] = clock()[0]
    m["parquet_export_mib"] = round(sum(f.stat().st_size for f in (home / "export").rglob("*.parquet")) / 2**20, 1)

    clock = _clock()
    als = build_model("als", cfg).fit(inter)
    m["als_s"], m["als_iterations"] = clock()[0], args.als_iterations
    save()
    pop = build_model("popularity", cfg).fit(inter)
    print(f"als: {m['als_s']} s", flush=True)

    # feature job: lists of a user sample, features over all events (local vs Ray)
    rng = np.random.default_rng(0)
    active = np.flatnonzero(np.bincount(inter.user, minlength=inter.n_users) > 0)
    users = np.sort(rng.choice(active, min(args.feature_users, len(active)), replace=False))
    if args.skip_features:
        users = users[:200]
    cands = generate_candidates({"als": als, "popularity": pop}, users, inter.to_csr(binary=True),
                                per_source=args.per_source, dense_scores=False)
    spec = fit_spec(ds, ["als", "popularity"], half_life_s=30 * 86400.0)
    catalog = FeatureCatalog.from_dataset(ds, spec)
    lists = Lists(user=cands.users, t=list_times(inter, cands.users, "user_last"), row_list=cands.row_list,
                  row_item=cands.row_item, src_score=cands.src_score, src_rank=cands.src_rank)
    m["feature_rows"], m["feature_lists"] = len(cands), len(users)
    clock = _clock()
    x_local = offline_features(inter, catalog, spec, lists)
    m["features_local_s"] = clock()[0]
    print(f"features local: {m['features_local_s']} s for {len(cands)} rows", flush=True)
    with open_engine(cfg, "ray") as eng:
        few = np.flatnonzero(np.isin(cands.row_list, np.arange(10)))  # the fixed cost: 10 lists
        tiny = Lists(user=lists.user[:10], t=lists.t[:10], row_list=lists.row_list[few],
                     row_item=lists.row_item[few], src_score={s: v[few] for s, v in lists.src_score.items()},
                     src_rank={s: v[few] for s, v in lists.src_rank.items()})
        clock = _clock()
        ray_offline_features(inter, catalog, spec, tiny, engine=eng)
        m["features_ray_fixed_s"] = clock()[0]  # export + actors reading all events + sorting them
        clock = _clock()
        x_ray = ray_offline_features(inter, catalog, spec, lists, engine=eng)
        m["features_ray_s"] = clock()[0]  # includes Parquet export + Ray Data job; Ray already up
        m["features_equal"] = bool(np.array_equal(x_local, x_ray, equal_nan=True))
        print(f"features ray: {m['features_ray_s']} s (equal: {m['features_equal']})", flush=True)
        save()
        del x_local, x_ray

        # two-tower on a user sample's events (text_backend none: no per-item text encoding)
        sample_users = rng.random(inter.n_users) < args.tt_share
        sub = inter.subset(sample_users[inter.user])
        items_used = np.unique(sub.item)
        remap = np.full(inter.n_items, -1, np.int64)
        remap[items_used] = np.arange(len(items_used))
        from winnow.data.interactions import Interactions

        tt_train = Interactions.from_arrays(sub.user, remap[sub.item], weight=sub.weight,
                                            timestamp=sub.timestamp, n_users=inter.n_users,
                                            n_items=len(items_used))
        tt_items = ds.items.iloc[items_used].reset_index(drop=True)
        tt_cfg = cfg.models.two_tower.model_copy(update={"epochs": 1, "text_backend": "none",
                                                         "validation_users": 200})
        m["two_tower_events"], m["two_tower_items"] = len(tt_train), len(items_used)
        clock = _clock()
        TwoTowerRecommender.from_config(tt_cfg).with_side_info(tt_items, ds.users).fit(tt_train)
        m["two_tower_local_s"] = clock()[0]
        print(f"two-tower local: {m['two_tower_local_s']} s on {len(tt_train)} events", flush=True)
        save()
        clock = _clock()
        _model, rep = eng.fit_two_tower(TwoTowerRecommender.from_config(tt_cfg).with_side_info(
            tt_items, ds.users), tt_train)
        m["two_tower_ray_s"] = clock()[0]
        m["two_tower_ray_report"] = rep
        print(f"two-tower ray: {m['two_tower_ray_s']} s", flush=True)
    ray.shutdown()
    import shutil

    shutil.rmtree(home, ignore_errors=True)  # the Parquet export and Ray Train checkpoints

    # extrapolation to the whole world (linear in rows / events; stated in the JSON)
    full_rows = m["feature_rows"] * len(active) / max(m["feature_lists"], 1)
    e = out["extrapolated"]
    e["method"] = ("linear: the feature job scales with candidate rows (all active users' lists at "
                   "this sample's rows/list), Ray's fixed part (features_ray_fixed_s: export, actors "
                   "reading and sorting all events) is not scaled; two-tower scales with events x "
                   "epochs (the measured fit is 1 epoch + validation + 1 refit epoch; the Ray Train "
                   "start-up/checkpoint overhead is not scaled); ALS with iterations (15 configured)")
    e["feature_rows_all_users"] = int(full_rows)
    e["features_local_h"] = round(m["features_local_s"] * full_rows / m["feature_rows"] / 3600, 2)
    fixed = m["features_ray_fixed_s"]
    if fixed >= 0.5 * m["features_ray_s"]:  # the 10-list probe was slowed by contention: scale all of it
        e["features_ray_note"] = f"fixed-cost probe {fixed} s unreliable (>= half the full run); scaled linearly"
        fixed = 0.0
    e["features_ray_h"] = round((fixed + (m["features_ray_s"] - fixed) * full_rows / m["feature_rows"]) / 3600, 2)
    scale_tt = len(inter) / max(m["two_tower_events"], 1) * cfg.models.two_tower.epochs
    e["two_tower_epochs"] = cfg.models.two_tower.epochs
    e["two_tower_local_h"] = round(m["two_tower_local_s"] * scale_tt / 3600, 2)
    fit = float(m["two_tower_ray_report"].get("fit_s", m["two_tower_ray_s"]))  # in-worker fit
    m["two_tower_ray_overhead_s"] = round(m["two_tower_ray_s"] - fit, 1)  # Ray Train start, data, checkpoint
    e["two_tower_ray_h"] = round((m["two_tower_ray_overhead_s"] + fit * scale_tt) / 3600, 2)
    e["als_15_iterations_s"] = round(m["als_s"] * 15 / args.als_iterations, 1)
    return out


def table_training(r: dict) -> str:
    m, e = r["measured"], r["extrapolated"]
    lines = [f"training @ {r['items']:,} items x {r['events']:,} events, Ray workers = {r['workers']}",
             f"  generate world {m['generate_s']} s; dataset {m['dataset_s']} s; Parquet export "
             f"{m['parquet_export_s']} s ({m['parquet_export_mib']} MiB); ALS {m['als_iterations']} it {m['als_s']} s",
             f"  {'job':<34}{'local s':>10}{'ray s':>10}{'speed-up':>10}"]
    for name, a, b in (("features (%d rows)" % m["feature_rows"], m["features_local_s"], m["features_ray_s"]),
                       ("two-tower (%d events)" % m["two_tower_events"], m["two_tower_local_s"], m["two_tower_ray_s"])):
        lines.append(f"  {name:<34}{a:>10}{b:>10}{a / b:>10.2f}")
    lines.append(f"  extrapolated, all users: features local {e['features_local_h']} h / ray {e['features_ray_h']} h; "
                 f"two-tower {e['two_tower_epochs']} epochs local {e['two_tower_local_h']} h / ray {e['two_tower_ray_h']} h")
    return "\n".join(lines)


# --- ann -------------------------------------------------------------------------------------------
def part_ann(args: argparse.Namespace) -> dict:
    import faiss

    from winnow.index import ExactIndex

    ann = _bench_module("ann")
    faiss.omp_set_num_threads(1)
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((1000, args.dim), dtype=np.float32)
    base = ann.mixture(rng, centres, args.n, 1.0)
    queries = ann.mixture(rng, centres, args.queries, 1.0)
    exact = ExactIndex(args.dim, "ip", threads=1)
    exact.upsert(np.arange(args.n, dtype=np.int64), base)
    truth = exact.search(queries, ann.K)[0]
    del exact
    out: dict = {"part": "ann", "n": args.n, "dim": args.dim, "queries": args.queries, "k": ann.K,
                 "data": "bench/ann.py mixture (1000 clusters, noise 1.0), inner product", "env": _env(),
                 "ivfpq": []}
    nlist = int(4 * np.sqrt(args.n))
    for m_pq in (16, 32):
        index = faiss.index_factory(args.dim, f"IVF{nlist},PQ{m_pq}x8", faiss.METRIC_INNER_PRODUCT)
        faiss.omp_set_num_threads(args.build_threads)
        t = time.perf_counter()
        index.train(base[rng.choice(args.n, min(args.n, 30 * nlist), replace=False)])
        index.add(base)
        build = time.perf_counter() - t
        faiss.omp_set_num_threads(1)
        size = len(faiss.serialize_index(index))
        for nprobe in (8, 16, 32, 64):
            faiss.extract_index_ivf(index).nprobe = nprobe
            (_, got), dt, wall = ann.timed(index.search, queries, ann.K)  # faiss: (scores, ids)
            row = {"index": f"IVF{nlist},PQ{m_pq}x8", "nprobe": nprobe, "recall_at_10": round(ann.recall(got, truth), 4),
                   "qps_1thread": round(args.queries / dt), "ms_per_query_1thread": round(dt / args.queries * 1e3, 3),
                   "bytes": size, "bytes_per_vector": round(size / args.n, 1), "build_s": round(build, 1),
                   "build_threads": args.build_threads}
            out["ivfpq"].append(row)
            print(row, flush=True)
    # HNSW bytes/vector and build s/vector at --hnsw-n (M=32 as in [index] / bench/ann.py)
    hn = min(args.hnsw_n, args.n)
    h = faiss.IndexHNSWFlat(args.dim, 32, faiss.METRIC_INNER_PRODUCT)
    h.hnsw.efConstruction = 128
    faiss.omp_set_num_threads(args.build_threads)
    t = time.perf_counter()
    h.add(base[:hn])
    hb = time.perf_counter() - t
    faiss.omp_set_num_threads(1)
    hsize = len(faiss.serialize_index(h))
    out["hnsw_memory"] = {"n": hn, "M": 32, "ef_construction": 128, "bytes": hsize,
                          "bytes_per_vector": round(hsize / hn, 1), "build_s": round(hb, 1),
                          "build_threads": args.build_threads}
    prior = ROOT / "bench" / "results" / "ann.json"
    if prior.is_file():
        a = json.loads(prior.read_text())
        out["hnsw_1m_from_ann_json"] = {k: a.get(k) for k in ("n", "build_seconds", "build_threads",
                                                                "single_query_ef_search", "single_query_ms_p50",
                                                                "single_query_ms_p99")}
        out["hnsw_1m_from_ann_json"]["by_ef"] = a.get("hnsw")
    return out


def table_ann(r: dict) -> str:
    lines = [f"ann @ {r['n']:,} x {r['dim']} (recall@10 vs exact, 1 search thread)",
             f"  {'index':<22}{'nprobe':>7}{'recall':>8}{'ms/q':>8}{'B/vec':>8}{'build s':>9}"]
    for x in r["ivfpq"]:
        lines.append(f"  {x['index']:<22}{x['nprobe']:>7}{x['recall_at_10']:>8}{x['ms_per_query_1thread']:>8}"
                     f"{x['bytes_per_vector']:>8}{x['build_s']:>9}")
    hm = r["hnsw_memory"]
    lines.append(f"  HNSW M=32 @ {hm['n']:,}: {hm['bytes_per_vector']} B/vector, build {hm['build_s']} s")
    return "\n".join(lines)


# --- ingest ----------------------------------------------------------------------------------------
def part_ingest(args: argparse.Namespace) -> dict:
    sys.path.insert(0, str(ROOT / "tests"))
    from servers.postgres import start_postgres

    store_bench = _bench_module("store")
    server = start_postgres(fsync=True)
    try:
        res = store_bench.run_postgres(args.ingest_events, server.create_database("scale"))
    finally:
        server.stop()
    return {"part": "ingest", "source": "bench/store.py run_postgres", "env": _env(), **res}


def table_ingest(r: dict) -> str:
    keys = ("import_events_per_s", "read_events_per_s", "append_100", "append_1", "db_mib")
    return "ingest (PostgreSQL)\n" + "\n".join(f"  {k}: {r.get(k)}" for k in keys)


# --- replicas --------------------------------------------------------------------------------------
def part_replicas(args: argparse.Namespace) -> dict:
    import threading

    sys.path.insert(0, str(ROOT / "tests"))
    from servers.postgres import start_postgres
    from servers.redis import start_redis

    serve = _bench_module("serve")
    pg, rd = start_postgres(fsync=True), start_redis()
    home = Path(tempfile.mkdtemp(prefix="winnow-replicas-"))
    procs = []
    try:
        os.environ["WINNOW__STORE__URL"] = pg.create_database("replicas")
        os.environ["WINNOW__ONLINE__URL"] = rd.url
        # blend ranker: the learned ranker's LightGBM fit took 267 s of the setup on this loaded
        # box (2k users); serving then ranks by the blend in both arms (1 and 2 replicas)
        os.environ["WINNOW__RANKER__ENABLED"] = "false"
        setup = serve.setup(home, args.rep_users, args.rep_items, args.rep_events)
        ports = [serve.free_port(), serve.free_port()]
        env_start = _env()
        procs.append(serve.start_server(home, ports[0], 1))
        # warm-up (not measured): a user's first request builds their online state in Redis from
        # PostgreSQL; without it the 1-replica arm pays those misses and the 2-replica arm not
        serve.run_wrk(f"http://127.0.0.1:{ports[0]}", args.concurrency, args.warmup, args.rep_users)
        one = serve.run_wrk(f"http://127.0.0.1:{ports[0]}", args.concurrency, args.duration, args.rep_users)
        env_mid = _env()
        procs.append(serve.start_server(home, ports[1], 1))
        serve.run_wrk(f"http://127.0.0.1:{ports[1]}", args.concurrency, args.warmup, args.rep_users)
        two: list[dict] = [{}, {}]

        def load(i: int) -> None:
            two[i] = serve.run_wrk(f"http://127.0.0.1:{ports[i]}", max(1, args.concurrency // 2),
                                   args.duration, args.rep_users)
        threads = [threading.Thread(target=load, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        for key in ("WINNOW__STORE__URL", "WINNOW__ONLINE__URL", "WINNOW__RANKER__ENABLED"):
            os.environ.pop(key, None)  # later parts (--part all) use their own stores
        for p in procs:
            p.terminate()
            p.wait(30)
        rd.stop()
        pg.stop()
        import shutil

        shutil.rmtree(home, ignore_errors=True)
    return {"part": "replicas", "env_start": env_start, "env_before_two": env_mid, "env": _env(),
            "setup": setup, "concurrency": args.concurrency, "duration_s": args.duration, "warmup_s": args.warmup, "ranker": "blend ([ranker] enabled = false)",
            "world": {"users": args.rep_users, "items": args.rep_items, "events": args.rep_events},
            "one_replica": one, "two_replicas": two, "two_replicas_rps": sum(x["rps"] for x in two)}


def table_replicas(r: dict) -> str:
    return (f"replicas (PostgreSQL + Redis, wrk -c{r['concurrency']} in total, load avg "
            f"{r['env_start']['loadavg'][0]:.1f} / {r['env_before_two']['loadavg'][0]:.1f})\n"
            f"  1 replica: {r['one_replica']['rps']:.0f} req/s, p99 {r['one_replica']['p99_ms']:.1f} ms\n"
            f"  2 replicas: {r['two_replicas_rps']:.0f} req/s")


# --- batch (bench/scale_batch.py) ----------------------------------------------------------------
def part_batch(args: argparse.Namespace) -> dict:
    return _bench_module("scale_batch").part_batch(args, env=_env, clock=_clock)


def table_batch(r: dict) -> str:
    return _bench_module("scale_batch").table_batch(r)


PARTS = {"training": (part_training, table_training), "ann": (part_ann, table_ann),
         "ingest": (part_ingest, table_ingest), "replicas": (part_replicas, table_replicas),
         "batch": (part_batch, table_batch)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", choices=[*PARTS, "all"], required=True)
    ap.add_argument("--json-dir", type=Path, default=ROOT / "bench" / "results")
    ap.add_argument("--users", type=int, default=500_000)
    ap.add_argument("--items", type=int, default=1_000_000)
    ap.add_argument("--events", type=int, default=10_000_000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--als-iterations", type=int, default=3)
    ap.add_argument("--feature-users", type=int, default=20_000)
    ap.add_argument("--per-source", type=int, default=50)
    ap.add_argument("--skip-features", action="store_true",
                    help="feature job on 200 users only (when its figures come from an earlier run)")
    ap.add_argument("--tt-share", type=float, default=0.05, help="share of users whose events train the two-tower")
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--hnsw-n", type=int, default=100_000)
    ap.add_argument("--build-threads", type=int, default=2)
    ap.add_argument("--ingest-events", type=int, default=1_000_000)
    ap.add_argument("--rep-users", type=int, default=2_000)
    ap.add_argument("--rep-items", type=int, default=2_000)
    ap.add_argument("--rep-events", type=int, default=50_000)
    ap.add_argument("--batch-users", type=int, default=50_000)
    ap.add_argument("--batch-items", type=int, default=20_000)
    ap.add_argument("--batch-events", type=int, default=1_000_000)
    ap.add_argument("--batch-model", default="als")
    ap.add_argument("--tower-items", type=int, default=1_000_000)
    ap.add_argument("--tower-events", type=int, default=50_000)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--duration", type=int, default=15)
    ap.add_argument("--warmup", type=int, default=5, help="replicas: unmeasured wrk seconds per replica first")
    args = ap.parse_args(argv)
    import signal

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the finally blocks: stop servers
    for name in PARTS if args.part == "all" else [args.part]:
        fn, table = PARTS[name]
        res = fn(args)
        args.json_dir.mkdir(parents=True, exist_ok=True)
        path = args.json_dir / f"scale_{name}.json"
        path.write_text(json.dumps(res, indent=2, default=str), encoding="utf-8")
        (args.json_dir / f"scale_{name}.partial.json").unlink(missing_ok=True)
        print(table(res))
        print(f"-> {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
