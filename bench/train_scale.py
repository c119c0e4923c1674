"""`winnow train` at the scale the product is for: wall time and peak RSS, per stage.

    python bench/train_scale.py --sizes 100k,1m --json bench/results/train_scale.json
    python bench/train_scale.py --sizes 100k --runs before=/tmp/before/src,after=src --json F
    python bench/train_scale.py --sweep-max-lists 2500,5000,10000,20000 --sizes 100k --json F
    python bench/train_scale.py --sizes 100k --two-tower --json F
    python bench/train_scale.py --sizes 1m --home /tmp/tt-1m --two-tower --two-tower-set text_backend=tfidf --json F

Sizes (synthetic worlds, ``winnow import synthetic --seed 5``): 100k = 100k users x 100k items x
2M events; 1m = 500k users x 1M items x 10M events. Each world is imported once into
``--workdir`` and reused (the import is timed and reported apart).

Each run is ``python -m winnow --home H train`` in a fresh process with the default
configuration, with ``PYTHONPATH`` set to the run's source tree (``--runs label=SRC,...``: the
same world trained by two code versions back to back, so their ratio is measured side by side).
A watcher samples the process's RSS every 0.5 s and stops it when it passes ``--max-rss-gib``
(the goal: 12 GiB) or runs longer than ``--timeout-min``: such a run is reported as stopped,
with the last progress line it printed, never as a time. A finished run reports the bundle
manifest's per-stage figures (training/progress.py: wall s, CPU s, peak RSS, overlap).

``--two-tower``: the run's home gets a ``winnow.toml`` that adds a ``two_tower`` source to the
default pipeline (plus ``[models.two_tower]`` keys from ``--two-tower-set k=v,...``), so
``winnow train`` fits the two-tower as its own stage (``two_tower`` in the table); the file is
removed after the run (a file already there is refused). The record keeps the manifest's
``engine.two_tower`` (budget, epochs, events seen, validation seconds).

``--two-tower-stage``: the two-tower stage alone, in this process, on a world's home: the
training data loaded as ``winnow train`` loads it, then the ``two_tower`` component fitted on
the local engine (default config + ``--two-tower-set``); reports the stage's wall / CPU
seconds, its sampled peak RSS, the process peak, and the run report (with ``text``: item texts
encoded vs taken from the text-vector cache, kept in ``WORKDIR/stage-scratch/cache/text``: a
second run on the same world measures a retrain's encode).

``--sweep-max-lists``: quality vs time of the ranker's list cap, in one process on one world:
the ranker stage (fit_served_ranker, reusing the models of one fit) at each cap; reports its
seconds, peak RSS and the ranker's validation NDCG@10 on its held-out users' lists.

Output: JSON (one record per run, with machine facts and load averages) + a summary table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from watch import watch

ROOT = Path(__file__).resolve().parents[1]
SIZES = {"100k": (100_000, 100_000, 2_000_000), "1m": (500_000, 1_000_000, 10_000_000)}
SEED = 5


def _machine() -> dict[str, Any]:
    return {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
            "mem_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)}


def _winnow(src: Path, home: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "winnow", "--home", str(home), *args]


def _env(src: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(src.resolve())
    env.setdefault("OPENBLAS_NUM_THREADS", "1")
    return env


def ensure_world(size: str, workdir: Path, src: Path, home: Path | None = None) -> tuple[Path, dict[str, Any]]:
    """The size's store under ``workdir`` (or at ``home``; imported once); returns (home, import record)."""
    users, items, events = SIZES[size]
    home = home or workdir / size
    marker = home / "imported.json"
    if marker.is_file():
        return home, json.loads(marker.read_text())
    home.mkdir(parents=True, exist_ok=True)
    for p in home.glob("winnow.db*"):
        p.unlink()
    started = time.perf_counter()
    subprocess.run(_winnow(src, home, "import", "synthetic", "--users", str(users), "--items", str(items),
                           "--events", str(events), "--seed", str(SEED)), env=_env(src), check=True)
    rec = {"users": users, "items": items, "events": events, "seed": SEED,
           "import_s": round(time.perf_counter() - started, 1)}
    marker.write_text(json.dumps(rec))
    return home, rec


def _toml_value(text: str) -> str:
    """A ``--two-tower-set`` value as TOML: numbers and booleans as they are, else a string."""
    if text in ("true", "false"):
        return text
    try:
        float(text)
        return text
    except ValueError:
        return json.dumps(text)


def two_tower_toml(settings: str) -> str:
    """A winnow.toml: the default pipeline sources plus a ``two_tower`` source, and the
    ``[models.two_tower]`` keys of ``settings`` ("k=v,k=v")."""
    sys.path.insert(0, str(ROOT / "src"))
    from winnow.core.config import default_dict

    sources = [*default_dict()["pipeline"]["sources"],
               {"name": "two_tower", "kind": "two_tower", "quota": 300, "weight": 0.9}]
    out = []
    if settings:
        out.append("[models.two_tower]")
        out += [f"{k.strip()} = {_toml_value(v.strip())}" for k, v in (kv.split("=", 1) for kv in settings.split(","))]
    for src in sources:
        out.append("[[pipeline.sources]]")
        out += [f"{k} = {json.dumps(v)}" for k, v in src.items()]
    return "\n".join(out) + "\n"


def run_train(home: Path, src: Path, *, max_rss_gib: float, timeout_s: float,
              config: str | None = None) -> dict[str, Any]:
    """One ``winnow train`` in a child process, watched (see module docstring); ``config`` is
    written to ``<home>/winnow.toml`` for this run only."""
    cfg_file = home / "winnow.toml"
    if config is not None:
        if cfg_file.exists():
            raise SystemExit(f"{cfg_file} exists: --two-tower writes its own config; move it away first")
        cfg_file.write_text(config)
    try:
        return _run_train(home, src, max_rss_gib=max_rss_gib, timeout_s=timeout_s)
    finally:
        if config is not None:
            cfg_file.unlink(missing_ok=True)


def _run_train(home: Path, src: Path, *, max_rss_gib: float, timeout_s: float) -> dict[str, Any]:
    for bundle in (home / "bundles").glob("*"):  # every run starts from the same state: no prior
        if bundle.is_dir():                       # bundle (its timings would seed the estimate)
            subprocess.run(["rm", "-rf", str(bundle)], check=True)
    (home / "bundles" / "ACTIVE").unlink(missing_ok=True)
    rec = watch(_winnow(src, home, "train"), env=_env(src), max_rss_gib=max_rss_gib, timeout_s=timeout_s)
    if rec["status"] == "ok":
        manifest = json.loads((home / "bundles" / (home / "bundles" / "ACTIVE").read_text().strip()
                               / "manifest.json").read_text())
        ranker = manifest.get("ranker", {})
        rec.update(stages=manifest.get("stages"), two_tower=(manifest.get("engine") or {}).get("two_tower"), ranker={k: ranker.get(k) for k in (
            "training_data", "lists_eligible", "max_lists", "inner_lists", "train_lists", "rows",
            "best_iteration", "valid_ndcg@10", "fit_seconds")})
    return rec


def sweep_max_lists(home: Path, caps: list[int]) -> list[dict[str, Any]]:
    """The ranker stage at each list cap on one world, models fitted once (in this process)."""
    sys.path.insert(0, str(ROOT / "src"))
    from winnow.core.config import load_config
    from winnow.data.open_store import open_store
    from winnow.components import FitContext, component
    from winnow.training.job import load_training_data
    from winnow.training.progress import StageClock
    from winnow.training.served_ranker import fit_served_ranker

    base = load_config(home)
    store = open_store(base.store_url())
    ds = load_training_data(store, base)
    fit = FitContext(base, ds)
    models = {c.model: c.fit(fit) for c in (component(k) for k in ("als", "itemitem", "trending"))}
    out = []
    for cap in caps:
        cfg = base.model_copy(update={"ranker": base.ranker.model_copy(update={"max_lists": cap})})
        clock = StageClock([f"ranker@{cap}"], events=len(ds.interactions))
        with clock.stage(f"ranker@{cap}"):
            _, info = fit_served_ranker(cfg, ds, store=store, models=models)
        stage = clock.report()[f"ranker@{cap}"]
        out.append({"max_lists": cap, "wall_s": stage["wall_s"], "peak_rss_mib": stage["peak_rss_mib"],
                    "load": os.getloadavg(), **{k: info.get(k) for k in (
                        "lists_eligible", "inner_lists", "train_lists", "valid_lists", "rows",
                        "best_iteration", "valid_ndcg@10")}})
        print(f"max_lists {cap:>6}: {stage['wall_s']:7.1f} s  peak {stage['peak_rss_mib'] / 1024:5.2f} GiB  "
              f"valid NDCG@10 {info.get('valid_ndcg@10') or float('nan'):.4f}  "
              f"({info.get('valid_lists')} validation lists)", flush=True)
    store.close()
    return out


def two_tower_stage(home: Path, settings: str, scratch: Path) -> dict[str, Any]:
    """The two-tower stage alone on ``home`` (see module docstring); the code is this checkout's
    ``src`` unless ``PYTHONPATH`` names another tree. What the stage writes in a home (the
    item-text vector cache) goes to ``scratch``, never into the world's home."""
    import resource
    import tomllib

    if not os.environ.get("PYTHONPATH"):
        sys.path.insert(0, str(ROOT / "src"))
    from winnow.components import FitContext, component
    from winnow.core.config import TwoTowerConfig, load_config
    from winnow.data.open_store import open_store
    from winnow.engine import LocalEngine
    from winnow.training.job import load_training_data
    from winnow.training.progress import StageClock

    base = load_config(home)
    extra = tomllib.loads("\n".join(f"{k.strip()} = {_toml_value(v.strip())}" for k, v in
                                    (kv.split("=", 1) for kv in settings.split(",")))) if settings else {}
    tt = TwoTowerConfig(**{**base.models.two_tower.model_dump(), **extra})
    cfg = base.model_copy(update={"models": base.models.model_copy(update={"two_tower": tt})})
    store = open_store(cfg.store_url())
    t0 = time.perf_counter()
    ds = load_training_data(store, cfg)
    load_s = time.perf_counter() - t0
    scratch.mkdir(parents=True, exist_ok=True)
    fit = FitContext(cfg.model_copy(update={"home": scratch}), ds, engine=LocalEngine())
    clock = StageClock(["two_tower"], events=len(ds.interactions))
    load_before = os.getloadavg()
    with clock.stage("two_tower"):
        component("two_tower").fit(fit)
    store.close()
    return {"events": len(ds.interactions), "load_data_s": round(load_s, 1), "config": extra,
            "stage": clock.report()["two_tower"], "report": fit.reports.get("two_tower"),
            "process_peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "load_before": load_before, "load_after": os.getloadavg()}


def _table(records: list[dict[str, Any]]) -> str:
    rows = ["| size | code | status | wall | peak RSS | load | evaluate | fit | two_tower | ranker | index (parallel) | write |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in records:
        st = r.get("stages") or {}

        def cell(name: str) -> str:
            s = st.get(name)
            return f"{s['wall_s']:.0f} s / {s['peak_rss_mib'] / 1024:.1f} GiB" if s and s.get("peak_rss_mib") else "-"
        status = r["status"] if r["status"] == "ok" else f"{r['status']} ({r['last_lines'][-1] if r['last_lines'] else ''})"
        rows.append(f"| {r['size']} | {r['label']} | {status} | {r['wall_s'] / 60:.1f} min | "
                    f"{r['peak_rss_gib_sampled']:.1f} GiB | {r['load_before'][0]:.1f} | {cell('evaluate')} | "
                    f"{cell('fit')} | {cell('two_tower')} | {cell('ranker')} | {cell('index')} | {cell('write')} |")
    return "\n".join(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="100k,1m")
    ap.add_argument("--runs", default="after=src", help="label=SRC_DIR,... (code versions, run in this order)")
    ap.add_argument("--workdir", default="/tmp/winnow-train-scale")
    ap.add_argument("--home", default="", help="the world's home (one size only; default WORKDIR/SIZE)")
    ap.add_argument("--max-rss-gib", type=float, default=12.0)
    ap.add_argument("--timeout-min", type=float, default=45.0)
    ap.add_argument("--two-tower", action="store_true", help="add a two_tower source (its own stage)")
    ap.add_argument("--two-tower-set", default="", help="[models.two_tower] keys for --two-tower: k=v,...")
    ap.add_argument("--two-tower-stage", action="store_true", help="the two-tower stage alone (in process)")
    ap.add_argument("--sweep-max-lists", default="", help="comma-separated caps (ranker stage only)")
    ap.add_argument("--json", required=True)
    args = ap.parse_args()
    workdir = Path(args.workdir)
    runs = [(label, (ROOT / src) if not Path(src).is_absolute() else Path(src))
            for label, src in (part.split("=", 1) for part in args.runs.split(","))]
    out: dict[str, Any] = {"machine": _machine(), "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                           "commit": subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                                                    capture_output=True, text=True).stdout.strip(),
                           "goal": {"1m": "<= 30 min, <= 12 GiB", "100k": "<= 5 min"}}
    records: list[dict[str, Any]] = []
    config = two_tower_toml(args.two_tower_set) if args.two_tower else None
    if args.home and "," in args.sizes:
        ap.error("--home takes one size (--sizes 100k or --sizes 1m)")
    for size in args.sizes.split(","):
        home, world = ensure_world(size, workdir, runs[-1][1], Path(args.home) if args.home else None)
        if args.two_tower_stage:
            out.setdefault("two_tower_stage", {})[size] = rec = two_tower_stage(home, args.two_tower_set,
                                                                                workdir / "stage-scratch")
            st = rec["stage"]
            print(f"two_tower stage ({size}): {st['wall_s']:.1f} s wall, {st['cpu_s']:.1f} s CPU, peak "
                  f"{st['peak_rss_mib'] / 1024:.2f} GiB; {rec['report']}", flush=True)
            continue
        if args.sweep_max_lists:
            out.setdefault("sweep", {})[size] = sweep_max_lists(home, [int(c) for c in args.sweep_max_lists.split(",")])
            continue
        for label, src in runs:
            print(f"== {size} / {label}: winnow train ({src})", flush=True)
            rec = {"size": size, "label": label, "src": str(src), "world": world,
                   "two_tower_config": config,
                   **run_train(home, src, max_rss_gib=args.max_rss_gib, timeout_s=args.timeout_min * 60,
                               config=config)}
            records.append(rec)
            print(_table([rec]).splitlines()[-1], flush=True)
    out["runs"] = records
    Path(args.json).write_text(json.dumps(out, indent=2))
    if records:
        print(_table(records))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
