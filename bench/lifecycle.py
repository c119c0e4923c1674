"""Closed-loop benchmark of `winnow autopilot`: a taste shift at a known round, and three ways to
keep the served model current -- never retrain, a fixed schedule, the drift trigger (+ the gate,
+ the canary).

    python bench/lifecycle.py [--rounds 30] [--shift 15] [--every 5] [--users 1500] [--items 600]
                              [--seeds 0,1,2] [--strategies never,schedule,...,schedule_canary]
                              [--max-drop 0.05] [--shown-positives exclude|include]
                              [--canary-plan 10,50,100] [--canary-min-exposed 100] [--canary-max-days 5]
                              [--json bench/results/lifecycle.json] [--png docs/img/lifecycle.png]

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

- schedule_canary / drift_any_canary / drift_concept_canary: the same triggers with
  ``after_gate = "canary"``: a passing challenger is handed to a canary rollout (plan
  ``--canary-plan``, a step lasts at least one day and needs ``--canary-min-exposed`` challenger
  users, an inconclusive step rolls back after ``--canary-max-days``; the rest is ``[rollout]``'s
  defaults), served to the users the sticky hash puts in its arm, and promoted or rolled back by
  the service's decision code on the simulated clicks (bench/lifecycle_canary.py). A cycle while
  a canary runs defers its hand-off, as the product does.

Every strategy runs one cycle at the end of round ``--burnin - 1`` (the bundle of the organic
pre-launch log has never seen served traffic); they diverge after it. The gate is the product's
(`[lifecycle.gate]` defaults) except ``holdout_days`` = 2 (rounds are days) and
``max_relative_drop`` (``--max-drop``, default 0.05 as shipped).

Reported per strategy: engagement (clicks per user per round, simulated truth) over the 5 rounds
before the shift, its trough after it, its post-shift mean (and as a multiple of "never"'s), the
mean of the last 5 rounds (recovered share = that / pre-shift); rounds from the shift to the first
drift trigger that fired (with the kinds flagged then) and to the first flag of each kind; false
alarms (triggers fired before the shift); the first cycle after the shift; every cycle's trigger,
gate verdict and reasons, hand-off, wall seconds and per-stage seconds, and the simulated truth
the gate tries to predict (each bundle's slates' expected engagement at that moment; summarised as
cycles where the gate failed a better challenger / passed a worse one); for the canary strategies
the canaries started, promoted, rolled back or halted (with the rule), engagement during canaries
(overall and per arm) and the seconds per decision look. With several ``--seeds``
(world, taste shift and draws all seeded) every seed runs every strategy, and ``across_seeds``
gives each figure's mean, std and per-seed values per strategy; the PNG shows the first seed.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lifecycle_canary import CanaryLooks, challenger_mask, rollout_context, running_canary  # noqa: E402
from lifecycle_report import across_seeds, plot, summarise  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DAY = 86_400
T0 = 1_700_000_000
STRATEGIES = ("never", "schedule", "drift_any", "drift_data", "drift_concept", "schedule_canary",
              "drift_any_canary", "drift_concept_canary")
TOML = """
[ranker]
enabled = false
[drift]
window_days = 3.0
top_items = 30
[lifecycle]
after_gate = "{after_gate}"
drift_trigger = "{trigger}"
drift_check_s = 1.0
drift_min_events = 500
{canary}
[lifecycle.gate]
holdout_days = 2.0
max_relative_drop = {max_drop}
shown_positives = "{shown}"
{rollout}"""


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
    """The ACTIVE bundle's (or bundle ``version``'s) ALS model as a slate source, in the world's dense ids."""

    def __init__(self, home: Path, n_users: int, n_items: int, version: str | None = None) -> None:
        self.version = version or active_version(home)
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


def _events(users: np.ndarray, items: np.ndarray, ts: np.ndarray, tag: str,
            requests: list[str] | None = None) -> pd.DataFrame:
    """Click events; ``requests``: each one's impression request id (``context.request_id``)."""
    out = pd.DataFrame({"user_id": [f"u{u}" for u in users], "item_id": [f"i{i}" for i in items],
                        "event_type": "click", "timestamp": ts, "event_id": [f"{tag}-{j}" for j in range(len(users))]})
    if requests is not None:
        out["context"] = [json.dumps({"request_id": q}) for q in requests]
    return out


def expected_clicks(world: UserWorld, slates: np.ndarray) -> np.ndarray:
    """float [n_users]: each user's expected clicks on its row of ``slates`` (-1 = empty slot),
    from the world's click probabilities (position bias included)."""
    ok = slates >= 0
    p = world.click_prob(np.arange(len(slates)), np.where(ok, slates, 0))
    return (p * ok).sum(axis=1)


def true_engagement(world: UserWorld, served: Served, consumed: list[set[int]], k: int) -> float:
    """Expected clicks per user of ``served``'s slates now (the world's click probabilities)."""
    return float(expected_clicks(world, served.slates(consumed, k)).mean())


def organic(world: UserWorld, rng: np.random.Generator, n: int = 20) -> np.ndarray:
    """int [n_users]: each user's best-liked item among ``n`` random catalog items (no position bias)."""
    c = world.config
    sample = rng.integers(0, c.n_items, (c.n_users, n))
    p = world.click_prob(np.arange(c.n_users), sample, examined=True)
    return sample[np.arange(c.n_users), p.argmax(axis=1)]


def serve_round(world: UserWorld, store: Any, served: Served, chall: Served | None, ro: Any,
                consumed: list[set[int]], rng: np.random.Generator, *, t: int, tag: str,
                organic_tag: str | None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """One request per user at ``t`` (+ user index s): the champion's slates, the challenger's for
    the users the running canary ``ro`` puts in its arm; clicks drawn and consumed; impressions
    (request id ``r<tag>-<user>``, ``context.rollout`` as the service logs it) and the clicks
    (carrying the request id) stored, plus one organic positive per user (``organic_tag``, at
    t + half a day) unless None. Returns (challenger-arm mask, clicks bool [users, k], the
    champion's slates, the challenger's slates or None)."""
    n = len(consumed)
    arm = challenger_mask(ro, n)
    champ_slates = served.slates(consumed, world.config.k)
    chall_slates = chall.slates(consumed, world.config.k) if chall is not None else None
    slates = champ_slates.copy()
    if chall_slates is not None:
        slates[arm] = chall_slates[arm]
    ok = slates >= 0
    clicks = world.respond(np.arange(n), np.where(ok, slates, 0)) & ok
    cu, ci = np.nonzero(clicks)
    items = slates[cu, ci]
    for u, i in zip(cu.tolist(), items.tolist(), strict=True):
        consumed[u].add(i)
    store.log_impressions([{"request_id": f"r{tag}-{u}", "user_id": f"u{u}", "timestamp": t + u,
                            "model_version": chall.version if arm[u] and chall else served.version,
                            "surface": "home", "context": rollout_context(ro, bool(arm[u]), f"r{tag}-{u}"),
                            "items": [{"item_id": f"i{i}", "position": j, "score": 0.0, "sources": ["als"],
                                       "propensity": 1.0} for j, i in enumerate(slates[u][ok[u]].tolist())]}
                           for u in range(n)])
    frames = [_events(cu, items, t + cu + 1, f"c{tag}", [f"r{tag}-{u}" for u in cu.tolist()])]
    if organic_tag is not None:
        frames.append(_events(np.arange(n), organic(world, rng), t + DAY // 2 + np.arange(n), organic_tag))
    store.append_events(pd.concat(frames))
    return arm, clicks, champ_slates, chall_slates


def run(strategy: str, args: argparse.Namespace) -> dict[str, Any]:
    """One strategy on its own home: per-round engagement, the cycles it ran (module docstring)."""
    sim = SimulationConfig(n_users=args.users, n_items=args.items, initial_share=1.0, drift=0.0,
                           fatigue=0.0, k=10, pool=50, seed=args.seed)
    world, rng = UserWorld(sim), np.random.default_rng(args.seed + 7)
    home = Path(tempfile.mkdtemp(prefix=f"winnow-lifecycle-{strategy}-"))
    canary = strategy.endswith("_canary")
    base = strategy.removesuffix("_canary")
    trigger = base.split("_", 1)[1] if base.startswith("drift_") else "off"
    can = canary_toml(args) if canary else ("", "")
    (home / "winnow.toml").write_text(TOML.format(trigger=trigger, max_drop=args.max_drop, shown=args.shown_positives,
                                                  after_gate="canary" if canary else "activate",
                                                  canary=can[0], rollout=can[1]))
    cfg = load_config(home)
    store = open_store(cfg.store_url())
    consumed: list[set[int]] = [set() for _ in range(sim.n_users)]
    rounds, cycles, checks = [], [], []
    looks = CanaryLooks(cfg)
    try:
        for d in range(args.warmup):  # the organic pre-launch log, one positive per user per day
            items = organic(world, rng)
            store.append_events(_events(np.arange(sim.n_users), items, T0 + d * DAY + np.arange(sim.n_users), f"o{d}"))
        train(cfg, store, evaluate_models=False)
        served = Served(home, sim.n_users, sim.n_items)
        chall: Served | None = None
        watch = DriftWatch(cfg)
        for r in range(args.rounds):
            if r == args.shift:
                shift_tastes(world, topics=args.topics, seed=args.seed + 99)
            t = T0 + (args.warmup + r) * DAY
            if active_version(home) != served.version:
                served = Served(home, sim.n_users, sim.n_items)
            ro = running_canary(store) if canary else None
            if ro is not None and (chall is None or chall.version != ro.challenger):
                chall = Served(home, sim.n_users, sim.n_items, version=ro.challenger)
            arm, clicks, _, _ = serve_round(world, store, served, chall if ro is not None else None, ro, consumed,
                                            rng, t=t, tag=str(r), organic_tag=f"o{args.warmup + r}")
            per_user = clicks.sum(axis=1)
            rounds.append({"round": r, "engagement": float(per_user.mean()), "served": served.version,
                           "canary": None if ro is None else {
                               "id": ro.id, "share": ro.share, "challenger": ro.challenger,
                               "champion_engagement": float(per_user[~arm].mean()) if (~arm).any() else None,
                               "challenger_engagement": float(per_user[arm].mean()) if arm.any() else None}})
            if canary:
                looks.look(store, now=t + DAY - 1, day=r)
            reason = None
            if r + 1 == args.burnin:  # every strategy: one cycle on the served traffic before it diverges
                reason = "burn-in"
            elif r + 1 < args.burnin:
                pass
            elif base == "schedule" and (r + 1 - args.burnin) % args.every == 0:
                reason = f"schedule: every {args.every} rounds"
            elif base.startswith("drift_"):
                reason = watch.check(store, until=t + DAY, now=float(r))
                checks.append({"round": r, **(watch.last or {"error": watch.last_error}), "fired": reason is not None})
            if reason is not None:
                t0 = time.perf_counter()
                out = run_once(cfg, store, say=lambda _m: None, trigger=reason, now=t + DAY)
                cycles.append(cycle_row(out.record or {}, r, reason, out.status, time.perf_counter() - t0,
                                        world, home, consumed, sim.k))
    finally:
        store.close()
        shutil.rmtree(home, ignore_errors=True)
    return {"strategy": strategy, "rounds": rounds, "cycles": cycles, "drift_checks": checks,
            "canary_decisions": looks.decisions, "canary_look_s": [round(x, 4) for x in looks.look_s]}


def canary_toml(args: argparse.Namespace) -> tuple[str, str]:
    """The ``[lifecycle]`` canary keys and the ``[rollout]`` section of a *_canary strategy."""
    return (f"canary_plan = [{args.canary_plan}]\ncanary_step_s = {float(DAY)}\n"
            f"canary_min_exposed = {args.canary_min_exposed}",
            f"[rollout]\nmax_step_s = {args.canary_max_days * float(DAY)}\n")


def cycle_row(rec: dict[str, Any], r: int, reason: str, status: str, wall: float, world: UserWorld, home: Path,
              consumed: list[set[int]], k: int) -> dict[str, Any]:
    """One cycle's figures, with the simulated truth the gate tries to predict: the expected
    engagement of the champion's and the challenger's slates at that moment."""
    gate = rec.get("gate") or {}
    truth = None
    if gate.get("champion") and gate.get("challenger"):
        truth = {who: round(true_engagement(world, Served(home, len(consumed), 0, version=gate[who]), consumed, k), 4)
                 for who in ("champion", "challenger")}
    return {"round": r, "trigger": reason, "status": status, "wall_s": round(wall, 2),
            "stages_wall_s": {n: round(v.get("wall_s") or 0.0, 2) for n, v in rec.get("stages", {}).items()},
            "gate_passed": gate.get("passed"), "gate_reasons": gate.get("reasons"), "gate_metrics": gate.get("metrics"),
            "holdout_shown_dropped": rec.get("stages", {}).get("datasets", {}).get("outputs", {}).get(
                "holdout_shown_dropped"),
            "true_engagement": truth,
            "action": rec.get("stages", {}).get("handoff", {}).get("outputs", {}).get("action")}


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
    ap.add_argument("--strategies", default="never,schedule,drift_any,drift_concept,schedule_canary,"
                                              "drift_concept_canary")
    ap.add_argument("--max-drop", type=float, default=0.05, help="[lifecycle.gate] max_relative_drop")
    ap.add_argument("--shown-positives", choices=("exclude", "include"), default="exclude",
                    help="[lifecycle.gate] shown_positives (include: the gate before stop 19)")
    ap.add_argument("--canary-plan", default="10,50,100", help="*_canary: [lifecycle] canary_plan (percents)")
    ap.add_argument("--canary-min-exposed", type=int, default=100, help="*_canary: [lifecycle] canary_min_exposed")
    ap.add_argument("--canary-max-days", type=float, default=5.0,
                    help="*_canary: [rollout] max_step_s in days (an inconclusive step rolls back)")
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
    gated = [(s, m) for s, m in summary.items() if "canaries" in m]
    if gated:
        print("\n| strategy | canaries | promoted | rolled back | halted | end rules | engagement during canaries "
              "(champion arm / challenger arm) | s per look |")
        print("|---|---|---|---|---|---|---|---|")
        for s, m in gated:
            print(f"| {s} | {m['canaries']} | {m['promoted']} | {m['rolled_back']} | {m['halted']} | "
                  f"{', '.join(m['end_rules']) or '-'} | {m['engagement_during_canary']} ({m['engagement_champion_arm']} / "
                  f"{m['engagement_challenger_arm']}) | {m['look_s_mean']} |")
    print("\ngate vs the simulated truth (cycles judged / failed a better challenger / passed a worse one): " +
          "; ".join(f"{s} {m['gate_judged']}/{m['gate_failed_better']}/{m['gate_passed_worse']}" for s, m in summary.items()))
    if len(seeds) > 1:
        print(f"\nacross seeds {seeds} (mean +- std):")
        for s, figs in out["across_seeds"].items():
            print(f"  {s}: " + ", ".join(f"{k} {v['mean']} +-{v['std']}" for k, v in figs.items()))
    print(f"\nwrote {args.json}" + (f", {png}" if png else ""))


if __name__ == "__main__":
    main()
