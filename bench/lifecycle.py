"""Closed-loop benchmark of `winnow autopilot`: a taste shift at a known round, and three ways to
keep the served model current -- never retrain, a fixed schedule, the drift trigger (+ the gate).

    python bench/lifecycle.py [--rounds 30] [--shift 12] [--every 6] [--users 600] [--items 800]
                              [--seeds 0,1,2] [--json bench/results/lifecycle.json] [--png docs/img/lifecycle.png]

The world is winnow.simulation.users.UserWorld (position-biased clicks, fatigue). One round is one
day. Each round, every user gets the top-k slate of the ACTIVE bundle's ALS model (loaded from the
bundle, as written by `winnow train` / the autopilot's fit; consumed items excluded), clicks are
drawn, and the round's events go into a real SQLite store: the clicks, plus one organic positive
per user (the item it likes best among 20 random catalog items: what users do outside the slates),
and every slate as an impression. At round ``--shift`` every user's taste moves towards one of a
few topics picked at random (winnow.simulation.users has no such event; this bench applies it).

Strategies, each on its own home and store from the same seed:

- never: the bundle trained before round 0 serves throughout;
- schedule: `run_once` (snapshot -> datasets -> fit -> gate -> write -> handoff, after_gate =
  activate) every ``--every`` rounds;
- drift_any / drift_data / drift_concept: winnow.lifecycle.drift_trigger.DriftWatch checked after
  every round with drift_trigger = "any" / "data" / "concept", `run_once` when it fires.

Every strategy runs one cycle at the end of round ``--burnin - 1`` (the bundle of the organic
pre-launch log has never seen served traffic); they diverge after it. The gate is the product's
(`[lifecycle.gate]` defaults) except ``holdout_days`` = 2 (rounds are days) and
``max_relative_drop`` (``--max-drop``, default 0.05 as shipped).

Reported per strategy: engagement (clicks per user per round, simulated truth) over the 5 rounds
before the shift, its trough after it, its post-shift mean (and as a multiple of "never"'s), the
mean of the last 5 rounds (recovered share = that / pre-shift); rounds from the shift to the first
drift trigger that fired (with the kinds flagged then) and to the first flag of each kind; false
alarms (triggers fired before the shift); the first cycle after the shift; every cycle's trigger,
gate verdict and reasons, hand-off, wall seconds and per-stage seconds. With several ``--seeds``
(world, taste shift and draws all seeded) every seed runs every strategy, and ``across_seeds``
gives each figure's mean, std and per-seed values per strategy; the PNG shows the first seed.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from winnow.bundle import active_version, bundles_dir, load_bundle  # noqa: E402
from winnow.core.config import load_config  # noqa: E402
from winnow.data.open_store import open_store  # noqa: E402
from winnow.lifecycle.cycle import run_once  # noqa: E402
from winnow.lifecycle.drift_trigger import DriftWatch  # noqa: E402
from winnow.simulation.users import SimulationConfig, UserWorld  # noqa: E402
from winnow.training.job import train  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DAY = 86_400
T0 = 1_700_000_000
STRATEGIES = ("never", "schedule", "drift_any", "drift_data", "drift_concept")
TOML = """
[ranker]
enabled = false
[drift]
window_days = 3.0
top_items = 30
[lifecycle]
after_gate = "activate"
drift_trigger = "{trigger}"
drift_check_s = 1.0
drift_min_events = 500
[lifecycle.gate]
holdout_days = 2.0
max_relative_drop = {max_drop}
"""


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def shift_tastes(world: UserWorld, *, topics: int, seed: int) -> None:
    """Every user's taste moves to (its old taste + 2 x the centre of one of ``topics`` topics
    picked at random), renormalised: the population migrates to a few topics."""
    rng = np.random.default_rng(seed)
    hot = rng.choice(world.config.topics, size=topics, replace=False)
    centres = _unit(np.stack([world.item_vecs[world.item_topic == t].mean(axis=0) for t in hot]))
    pick = centres[rng.integers(0, topics, world.config.n_users)]
    world.tastes = _unit(world.tastes + 2.0 * pick)


class Served:
    """The ACTIVE bundle's ALS model as a slate source, in the world's dense ids."""

    def __init__(self, home: Path, n_users: int, n_items: int) -> None:
        self.version = active_version(home)
        b = load_bundle(bundles_dir(home) / str(self.version))
        self.model = b.models["als"]
        self.users = np.array([b.user_ids.index(f"u{u}") if f"u{u}" in b.user_ids else -1
                               for u in range(n_users)])
        self.to_world = np.array([int(str(b.item_ids.external(i))[1:]) for i in range(len(b.item_ids))])

    def slates(self, consumed: list[set[int]], k: int) -> np.ndarray:
        """int [n_users, k] world item ids: the model's best items each user has not consumed."""
        known = np.flatnonzero(self.users >= 0)
        top, _ = self.model.recommend(self.users[known], k + 50)
        out = np.full((len(self.users), k), -1, np.int64)
        for row, u in zip(top, known, strict=True):
            items = [int(self.to_world[i]) for i in row if i >= 0 and int(self.to_world[i]) not in consumed[u]]
            out[u, : min(k, len(items))] = items[:k]
        return out


def _events(users: np.ndarray, items: np.ndarray, ts: np.ndarray, tag: str) -> pd.DataFrame:
    return pd.DataFrame({"user_id": [f"u{u}" for u in users], "item_id": [f"i{i}" for i in items],
                         "event_type": "click", "timestamp": ts, "event_id": [f"{tag}-{j}" for j in range(len(users))]})


def organic(world: UserWorld, rng: np.random.Generator, n: int = 20) -> np.ndarray:
    """int [n_users]: each user's best-liked item among ``n`` random catalog items (no position bias)."""
    c = world.config
    sample = rng.integers(0, c.n_items, (c.n_users, n))
    p = world.click_prob(np.arange(c.n_users), sample, examined=True)
    return sample[np.arange(c.n_users), p.argmax(axis=1)]


def run(strategy: str, args: argparse.Namespace) -> dict[str, Any]:
    """One strategy on its own home: per-round engagement, the cycles it ran (module docstring)."""
    sim = SimulationConfig(n_users=args.users, n_items=args.items, initial_share=1.0, drift=0.0,
                           fatigue=0.0, k=10, pool=50, seed=args.seed)
    world, rng = UserWorld(sim), np.random.default_rng(args.seed + 7)
    home = Path(tempfile.mkdtemp(prefix=f"winnow-lifecycle-{strategy}-"))
    trigger = strategy.split("_", 1)[1] if strategy.startswith("drift_") else "off"
    (home / "winnow.toml").write_text(TOML.format(trigger=trigger, max_drop=args.max_drop))
    cfg = load_config(home)
    store = open_store(cfg.store_url())
    consumed: list[set[int]] = [set() for _ in range(sim.n_users)]
    rounds, cycles, checks = [], [], []
    try:
        for d in range(args.warmup):  # the organic pre-launch log, one positive per user per day
            items = organic(world, rng)
            store.append_events(_events(np.arange(sim.n_users), items, T0 + d * DAY + np.arange(sim.n_users), f"o{d}"))
        train(cfg, store, evaluate_models=False)
        served = Served(home, sim.n_users, sim.n_items)
        watch = DriftWatch(cfg)
        for r in range(args.rounds):
            if r == args.shift:
                shift_tastes(world, topics=args.topics, seed=args.seed + 99)
            t = T0 + (args.warmup + r) * DAY
            if active_version(home) != served.version:
                served = Served(home, sim.n_users, sim.n_items)
            slates = served.slates(consumed, sim.k)
            ok = slates >= 0
            clicks = world.respond(np.arange(sim.n_users), np.where(ok, slates, 0)) & ok
            cu, ci = np.nonzero(clicks)
            items = slates[cu, ci]
            for u, i in zip(cu.tolist(), items.tolist(), strict=True):
                consumed[u].add(i)
            org = organic(world, rng)
            store.log_impressions([{"request_id": f"r{r}-{u}", "user_id": f"u{u}", "timestamp": t + u,
                                    "model_version": served.version, "surface": "home", "context": {},
                                    "items": [{"item_id": f"i{i}", "position": j, "score": 0.0, "sources": ["als"],
                                               "propensity": 1.0} for j, i in enumerate(slates[u][ok[u]].tolist())]}
                                   for u in range(sim.n_users)])
            store.append_events(pd.concat([_events(cu, items, t + cu + 1, f"c{r}"),
                                           _events(np.arange(sim.n_users), org, t + DAY // 2 + np.arange(sim.n_users),
                                                   f"o{args.warmup + r}")]))
            rounds.append({"round": r, "engagement": float(clicks.sum() / sim.n_users), "served": served.version})
            reason = None
            if r + 1 == args.burnin:  # every strategy: one cycle on the served traffic before it diverges
                reason = "burn-in"
            elif r + 1 < args.burnin:
                pass
            elif strategy == "schedule" and (r + 1 - args.burnin) % args.every == 0:
                reason = f"schedule: every {args.every} rounds"
            elif strategy.startswith("drift_"):
                reason = watch.check(store, until=t + DAY, now=float(r))
                checks.append({"round": r, **(watch.last or {"error": watch.last_error}), "fired": reason is not None})
            if reason is not None:
                t0 = time.perf_counter()
                out = run_once(cfg, store, say=lambda _m: None, trigger=reason)
                rec = out.record or {}
                cycles.append({"round": r, "trigger": reason, "status": out.status,
                               "wall_s": round(time.perf_counter() - t0, 2),
                               "stages_wall_s": {k: round(v.get("wall_s") or 0.0, 2)
                                                 for k, v in rec.get("stages", {}).items()},
                               "gate_passed": (rec.get("gate") or {}).get("passed"),
                               "gate_reasons": (rec.get("gate") or {}).get("reasons"),
                               "gate_metrics": (rec.get("gate") or {}).get("metrics"),
                               "action": rec.get("stages", {}).get("handoff", {}).get("outputs", {}).get("action")})
    finally:
        store.close()
        shutil.rmtree(home, ignore_errors=True)
    return {"strategy": strategy, "rounds": rounds, "cycles": cycles, "drift_checks": checks}


def summarise(res: dict[str, Any], shift: int, never: dict[str, Any] | None) -> dict[str, Any]:
    eng = np.array([r["engagement"] for r in res["rounds"]])
    base = np.array([r["engagement"] for r in never["rounds"]]) if never else None
    pre = float(eng[max(0, shift - 5):shift].mean())
    post = eng[shift:]
    after = [c for c in res["cycles"] if c["round"] >= shift]
    fired = [c for c in res["drift_checks"] if c["fired"]]
    first = next((c for c in fired if c["round"] >= shift), None)
    kinds = [k for k in ("data", "concept") if first and first[f"{k}_drift"]]
    flagged = {k: next((c["round"] - shift for c in res["drift_checks"] if c["round"] >= shift and c.get(f"{k}_drift")),
                       None) for k in ("data", "concept")}
    return {"engagement_pre_shift": round(pre, 4), "engagement_trough": round(float(post.min()), 4),
            "engagement_last5": round(float(eng[-5:].mean()), 4),
            "recovered_share": round(float(eng[-5:].mean()) / pre, 3) if pre > 0 else None,
            "engagement_post_shift_mean": round(float(post.mean()), 4),
            "post_shift_vs_never": round(float(post.mean() / base[shift:].mean()), 3) if base is not None else None,
            "rounds_to_first_cycle_after_shift": (after[0]["round"] - shift) if after else None,
            "rounds_to_detect": (first["round"] - shift) if first else None,
            "drift_kinds_at_detection": kinds, "rounds_to_flag_by_kind": flagged,
            "false_alarms_before_shift": sum(c["round"] < shift for c in fired),
            "gate_failed": sum(c["gate_passed"] is False for c in res["cycles"]),
            "cycles": len(res["cycles"]), "cycles_activated": sum(c["action"] == "activated" for c in res["cycles"]),
            "cycle_wall_s_mean": round(float(np.mean([c["wall_s"] for c in res["cycles"]])), 2) if res["cycles"] else None,
            "cycle_wall_s_total": round(float(sum(c["wall_s"] for c in res["cycles"])), 1)}


ACROSS = ("engagement_post_shift_mean", "post_shift_vs_never", "recovered_share", "engagement_trough",
          "rounds_to_detect", "false_alarms_before_shift", "cycles", "gate_failed", "cycle_wall_s_mean")


def across_seeds(summaries: dict[int, dict[str, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """Per strategy and figure of ``ACROSS``: mean, std and the per-seed values (None where a seed
    has no value, e.g. a shift never detected; mean and std over the seeds that have one)."""
    out: dict[str, dict[str, Any]] = {}
    for strategy in next(iter(summaries.values())):
        figs = {}
        for key in ACROSS:
            vals = [summaries[seed][strategy].get(key) for seed in summaries]
            have = np.array([v for v in vals if v is not None], np.float64)
            figs[key] = {"mean": round(float(have.mean()), 4) if len(have) else None,
                         "std": round(float(have.std()), 4) if len(have) else None, "per_seed": vals}
        out[strategy] = figs
    return out


def plot(results: dict[str, dict[str, Any]], shift: int, path: Path) -> Path | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, ax = plt.subplots(figsize=(8, 4))
    for name, res in results.items():
        ax.plot([r["engagement"] for r in res["rounds"]], label=name)
        for c in res["cycles"]:
            ax.axvline(c["round"], alpha=0.15, color=ax.lines[-1].get_color())
    ax.axvline(shift, color="k", linestyle="--", label="taste shift")
    ax.set_xlabel("round (day)")
    ax.set_ylabel("clicks per user")
    ax.legend()
    ax.set_title("autopilot: never vs schedule vs drift-triggered retraining")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--shift", type=int, default=15)
    ap.add_argument("--every", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=8)
    ap.add_argument("--burnin", type=int, default=5)
    ap.add_argument("--topics", type=int, default=4)
    ap.add_argument("--users", type=int, default=1500)
    ap.add_argument("--items", type=int, default=600)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--seeds", default="", help="comma-separated seeds, each a full run (default: --seed)")
    ap.add_argument("--strategies", default="never,schedule,drift_any,drift_concept")
    ap.add_argument("--max-drop", type=float, default=0.05, help="[lifecycle.gate] max_relative_drop")
    ap.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "lifecycle.json")
    ap.add_argument("--png", type=Path, default=ROOT / "docs" / "img" / "lifecycle.png")
    args = ap.parse_args()
    if not 0 < args.burnin <= args.shift < args.rounds:
        ap.error(f"need 0 < --burnin ({args.burnin}) <= --shift ({args.shift}) < --rounds ({args.rounds})")
    unknown = set(args.strategies.split(",")) - set(STRATEGIES)
    if unknown:
        ap.error(f"--strategies: unknown {sorted(unknown)}; choose from {', '.join(STRATEGIES)}")
    seeds = [int(x) for x in args.seeds.split(",")] if args.seeds else [args.seed]
    by_seed: dict[int, dict[str, Any]] = {}
    for seed in seeds:
        args.seed = seed
        results, seconds = {}, {}
        for s in args.strategies.split(","):
            t0 = time.perf_counter()
            results[s] = run(s, args)
            seconds[s] = round(time.perf_counter() - t0, 1)
            print(f"seed {seed} {s}: {seconds[s]} s, {len(results[s]['cycles'])} cycles", flush=True)
        by_seed[seed] = {"seconds": seconds, "runs": results,
                         "summary": {s: summarise(r, args.shift, results.get("never")) for s, r in results.items()}}
    first = by_seed[seeds[0]]
    summary, results = first["summary"], first["runs"]
    png = plot(results, args.shift, args.png)
    out = {"args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
           "seeds": seeds, "seconds": first["seconds"], "summary": summary, "runs": results,
           "across_seeds": across_seeds({seed: v["summary"] for seed, v in by_seed.items()}),
           "by_seed": {seed: {"seconds": v["seconds"], "summary": v["summary"]} for seed, v in by_seed.items()},
           "python": platform.python_version(),
           "png": str(png.relative_to(ROOT)) if png and png.is_relative_to(ROOT) else (str(png) if png else None)}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(out, indent=1))
    print("\n| strategy | engagement pre-shift | trough | post-shift mean (vs never) | last 5 rounds | rounds to "
          "detect (kinds) | false alarms | rounds to 1st cycle after shift | cycles (gate failed) | s per cycle |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for s, m in summary.items():
        det = "-" if m["rounds_to_detect"] is None else f"{m['rounds_to_detect']} ({','.join(m['drift_kinds_at_detection'])})"
        print(f"| {s} | {m['engagement_pre_shift']} | {m['engagement_trough']} | {m['engagement_post_shift_mean']} "
              f"({m['post_shift_vs_never']}) | {m['engagement_last5']} | {det} | {m['false_alarms_before_shift']} | "
              f"{m['rounds_to_first_cycle_after_shift']} | {m['cycles']} ({m['gate_failed']}) | {m['cycle_wall_s_mean']} |")
    if len(seeds) > 1:
        print(f"\nacross seeds {seeds} (mean +- std):")
        for s, figs in out["across_seeds"].items():
            print(f"  {s}: " + ", ".join(f"{k} {v['mean']} +-{v['std']}" for k, v in figs.items()))
    print(f"\nwrote {args.json}" + (f", {png}" if png else ""))


if __name__ == "__main__":
    main()
