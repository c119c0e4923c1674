"""Closed-loop canary benchmark (issue 15): a champion against a better, a worse and a mildly worse
challenger, decided by the service's rollout code on simulated clicks; time to the decision and regret.

    python bench/rollout.py [--seeds 0,1,2,3,4] [--users 1500] [--items 600] [--warmup 8] [--recent 4]
                            [--topics 4] [--mild 0.3]
                            [--plan 10,50,100] [--step-days 0.5] [--ticks-per-day 4] [--min-exposed 100]
                            [--max-step-days 2] [--max-days 6]
                            [--json bench/results/rollout_sim.json] [--png docs/img/rollout_sim.png]

The world is bench/lifecycle.py's (winnow.simulation.users.UserWorld, position-biased clicks,
one organic positive per user per day, a taste shift). Per seed, on one home and store:
``--warmup`` days of the organic log, then the CHAMPION is trained on it (ALS, activated); the
WORSE challenger is trained on the same days with the item ids scrambled (a random permutation
of the catalog, as a broken id join would: each user's history points at unrelated items) and
MILD_WORSE with ``--mild`` of the catalog scrambled (the rest intact); then every user's taste
moves towards a few topics (lifecycle.shift_tastes), the champion serves ``--recent`` days (clicks, impressions, organic
positives stored) and the BETTER challenger is trained on everything stored (it has seen the
shift). Which is better is not assumed: the simulator's expected clicks per user of each bundle's
slates at that moment (``truth``) is recorded, and "correct" below means what the truth says.

Then, for each challenger and each policy -- the canary (``--plan``) and an immediate 50/50
test (plan 50,100: half the users from the start, promoted after one step) -- on a copy of the
home and of the world: winnow.rollout.control.start with the simulated clock, and ticks of
1/``--ticks-per-day`` day in which every user makes one request; the canary's users (the
service's sticky hash) get the challenger's slates; impressions and clicks go to the store as the
service logs them (lifecycle.serve_round); after each tick the service's decision code
(lifecycle_canary.CanaryLooks: report.measure + control.transition) looks, until the rollout
promotes, rolls back or halts, or ``--max-days`` pass. Steps last ``--step-days`` and need
``--min-exposed`` challenger users; a step inconclusive after ``--max-step-days`` rolls back.

Recorded per run: the decision, the rule that fired, correct or not, simulated days and events
(impressions, clicks) until it, each look's arm metrics as the decision code measured them, and
REGRET from the simulator's truth: at every tick, each user's expected clicks e_champion[u] and
e_challenger[u] on the slate each bundle would serve it now; the regret of a tick is
sum_u (e_better[u] - e_served[u]) where "better" is the bundle with the higher truth at the start
and e_served the one the user's arm got; summed over the ticks until the decision. The same
ticks under an immediate 50/50 split would lose sum_u 0.5 (e_better[u] - e_worse[u]) a tick (the
expectation over the split's hash): ``regret_5050_same_events``. The closed-loop 50/50 policy's
own regret (until its own decision) is its run's ``regret``. The canary's salt is random
(control.start), so a run's arms differ between invocations; the world and the draws are seeded.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import copy  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from winnow.core.config import load_config  # noqa: E402
from winnow.data.open_store import open_store  # noqa: E402
from winnow.rollout import control  # noqa: E402
from winnow.simulation.users import SimulationConfig, UserWorld  # noqa: E402
from winnow.training.job import train  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lifecycle import DAY, T0, Served, _events, expected_clicks, organic, serve_round, shift_tastes  # noqa: E402
from lifecycle_canary import CanaryLooks, running_canary  # noqa: E402
from rollout_report import plot, summarise, table  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TOML = """
[ranker]
enabled = false
[rollout]
max_step_s = {max_step_s}
"""
FINAL = ("promoted", "rolled_back", "halted")


def tick_regret(e_champion: np.ndarray, e_challenger: np.ndarray, arm: np.ndarray,
                challenger_better: bool) -> tuple[float, float]:
    """(regret of the arms served, expected regret of a 50/50 split) for one request per user:
    sum over users of e_better - e_served, and of 0.5 x (e_better - e_worse) (module docstring)."""
    better, worse = (e_challenger, e_champion) if challenger_better else (e_champion, e_challenger)
    served = np.where(arm, e_challenger, e_champion)
    return float((better - served).sum()), float(0.5 * (better - worse).sum())


def scramble(n_items: int, share: float, seed: int) -> np.ndarray:
    """int [n_items]: item id -> the id a broken join writes; a random ``share`` of the catalog is
    permuted among itself (a random permutation of those ids: a few may map to themselves)."""
    rng = np.random.default_rng(seed)
    out = np.arange(n_items)
    hit = rng.choice(n_items, size=int(round(share * n_items)), replace=False)
    out[hit] = rng.permutation(hit)
    return out


def build(seed: int, args: argparse.Namespace) -> dict[str, Any]:
    """One seed's home (champion active, two challengers written) and world after the shift."""
    sim = SimulationConfig(n_users=args.users, n_items=args.items, initial_share=1.0, drift=0.0,
                           fatigue=0.0, k=10, pool=50, seed=seed)
    world, rng = UserWorld(sim), np.random.default_rng(seed + 7)
    home = Path(tempfile.mkdtemp(prefix=f"winnow-rollout-{seed}-"))
    (home / "winnow.toml").write_text(TOML.format(max_step_s=args.max_step_days * DAY))
    cfg = load_config(home)
    store = open_store(cfg.store_url())
    maps = {"worse": scramble(sim.n_items, 1.0, seed + 13), "mild_worse": scramble(sim.n_items, args.mild, seed + 17)}
    scrambled = {name: open_store(f"sqlite:///{home}/{name}.db") for name in maps}
    consumed: list[set[int]] = [set() for _ in range(sim.n_users)]
    try:
        for d in range(args.warmup):
            items, ts = organic(world, rng), T0 + d * DAY + np.arange(sim.n_users)
            store.append_events(_events(np.arange(sim.n_users), items, ts, f"o{d}"))
            for name, to in maps.items():
                scrambled[name].append_events(_events(np.arange(sim.n_users), to[items], ts, f"o{d}"))
        versions = {"champion": train(cfg, store, evaluate_models=False).version}
        versions |= {name: train(cfg, st, evaluate_models=False, activate_bundle=False).version
                     for name, st in scrambled.items()}
        shift_tastes(world, topics=args.topics, seed=seed + 99)
        served = Served(home, sim.n_users, sim.n_items)
        for d in range(args.warmup, args.warmup + args.recent):
            serve_round(world, store, served, None, None, consumed, rng, t=T0 + d * DAY, tag=f"w{d}",
                        organic_tag=f"o{d}")
        versions["better"] = train(cfg, store, evaluate_models=False, activate_bundle=False).version
        truth = {name: float(expected_clicks(world, Served(home, sim.n_users, sim.n_items, v).slates(
            consumed, sim.k)).mean()) for name, v in versions.items()}
    finally:
        store.close()
        for st in scrambled.values():
            st.close()
    for name in maps:
        (home / f"{name}.db").unlink(missing_ok=True)
    return {"home": home, "world": world, "rng": rng, "consumed": consumed, "t": T0 + (args.warmup + args.recent) * DAY,
            "versions": versions, "truth": truth}


def run_canary(base: dict[str, Any], challenger: str, plan: str, args: argparse.Namespace) -> dict[str, Any]:
    """One rollout of ``challenger`` ("better" / "worse") with ``plan`` on a copy of the seed's home
    and world, until it ends or ``--max-days`` pass (module docstring)."""
    home = Path(tempfile.mkdtemp(prefix="winnow-rollout-run-")) / "home"
    shutil.copytree(base["home"], home)
    world, rng, consumed = copy.deepcopy(base["world"]), copy.deepcopy(base["rng"]), copy.deepcopy(base["consumed"])
    n = len(consumed)
    truth = base["truth"]
    challenger_better = truth[challenger] > truth["champion"]
    cfg = load_config(home)
    store = open_store(cfg.store_url())
    tick_s = DAY / args.ticks_per_day
    t0 = base["t"]
    ticks: list[dict[str, Any]] = []
    looks = CanaryLooks(cfg)
    impressions = clicks = 0
    regret = regret_5050 = 0.0
    try:
        control.start(store, cfg, challenger=base["versions"][challenger], mode="canary",
                      plan=control.parse_plan(plan), step_s=args.step_days * DAY, min_exposed=args.min_exposed,
                      by="bench", now=t0)
        served = Served(home, n, world.config.n_items)
        chall = Served(home, n, world.config.n_items, base["versions"][challenger])
        for i in range(int(args.max_days * args.ticks_per_day)):
            ro = running_canary(store)
            if ro is None:
                break
            t = int(t0 + i * tick_s)
            arm, clicked, champ_slates, chall_slates = serve_round(world, store, served, chall, ro, consumed, rng,
                                                                   t=t, tag=f"t{i}", organic_tag=None)
            e_champ, e_chall = expected_clicks(world, champ_slates), expected_clicks(world, chall_slates)
            lost, lost_5050 = tick_regret(e_champ, e_chall, arm, challenger_better)
            regret, regret_5050 = regret + lost, regret_5050 + lost_5050
            impressions, clicks = impressions + n, clicks + int(clicked.sum())
            decision = looks.look(store, now=t + tick_s, day=i)
            ticks.append({"tick": i, "share": ro.share, "challenger_users": int(arm.sum()),
                          "true_champion": round(float(e_champ.mean()), 4),
                          "true_challenger": round(float(e_chall.mean()), 4), "regret": round(lost, 3),
                          "regret_5050": round(lost_5050, 3), "clicks": int(clicked.sum()),
                          "decision": decision and {x: decision[x] for x in ("action", "rule", "state")}})
        end = next((d for d in looks.decisions if d["state"] in FINAL), None)
    finally:
        store.close()
        shutil.rmtree(home.parent, ignore_errors=True)
    state = end["state"] if end else "undecided"
    correct = (state == "promoted") == challenger_better and state in ("promoted", "rolled_back")
    return {"challenger": challenger, "plan": plan, "challenger_better": challenger_better, "state": state,
            "rule": end["rule"] if end else None, "correct": correct,
            "days_to_decision": round(len(ticks) / args.ticks_per_day, 3) if end else None,
            "impressions_to_decision": impressions if end else None, "clicks_to_decision": clicks if end else None,
            "ticks": len(ticks), "regret": round(regret, 2), "regret_5050_same_events": round(regret_5050, 2),
            "regret_per_1k_impressions": round(1000 * regret / impressions, 3) if impressions else None,
            "decisions": looks.decisions, "looks": looks.history, "per_tick": ticks,
            "look_s_mean": round(float(np.mean(looks.look_s)), 4) if looks.look_s else None}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0,1,2,3,4")
    ap.add_argument("--users", type=int, default=1500)
    ap.add_argument("--items", type=int, default=600)
    ap.add_argument("--warmup", type=int, default=8, help="days of organic log the champion is trained on")
    ap.add_argument("--recent", type=int, default=4, help="days the champion serves after the shift")
    ap.add_argument("--topics", type=int, default=4, help="topics the tastes move towards")
    ap.add_argument("--mild", type=float, default=0.3, help="share of the catalog scrambled for mild_worse")
    ap.add_argument("--plan", default="10,50,100", help="the canary's plan (percents)")
    ap.add_argument("--step-days", type=float, default=0.5)
    ap.add_argument("--ticks-per-day", type=int, default=4, help="requests per user per day (a look after each)")
    ap.add_argument("--min-exposed", type=int, default=100)
    ap.add_argument("--max-step-days", type=float, default=2.0, help="[rollout] max_step_s in days")
    ap.add_argument("--max-days", type=float, default=6.0, help="a run stops undecided after this")
    ap.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "rollout_sim.json")
    ap.add_argument("--png", type=Path, default=ROOT / "docs" / "img" / "rollout_sim.png")
    args = ap.parse_args()
    try:
        control.parse_plan(args.plan)
    except Exception as exc:  # RolloutError names the problem
        ap.error(f"--plan: {exc}")
    if args.step_days * args.ticks_per_day < 1 or args.max_step_days < args.step_days:
        ap.error("need --step-days >= one tick (1 / --ticks-per-day) and --max-step-days >= --step-days")
    seeds = [int(s) for s in args.seeds.split(",")]
    runs: list[dict[str, Any]] = []
    bases: dict[int, dict[str, Any]] = {}
    t_all = time.perf_counter()
    for seed in seeds:
        t0 = time.perf_counter()
        base = build(seed, args)
        bases[seed] = {"versions": base["versions"], "truth": {k: round(v, 4) for k, v in base["truth"].items()},
                       "build_s": round(time.perf_counter() - t0, 1)}
        try:
            for challenger in ("better", "worse", "mild_worse"):
                for plan in (args.plan, "50,100"):
                    t1 = time.perf_counter()
                    res = run_canary(base, challenger, plan, args)
                    runs.append({"seed": seed, "wall_s": round(time.perf_counter() - t1, 1), **res})
                    print(f"seed {seed} {challenger} plan {plan}: {res['state']} ({res['rule']}) after "
                          f"{res['days_to_decision']} days, {runs[-1]['wall_s']} s", flush=True)
        finally:
            shutil.rmtree(base["home"], ignore_errors=True)
    summary = summarise(runs, args.plan)
    png = plot([r for r in runs if r["seed"] == seeds[0]], args.png, args.ticks_per_day)
    out = {"args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
           "seeds": bases, "summary": summary, "runs": runs, "wall_s": round(time.perf_counter() - t_all, 1),
           "python": platform.python_version(), "numpy": np.__version__, "pandas": pd.__version__,
           "png": str(png.relative_to(ROOT)) if png and png.is_relative_to(ROOT) else (str(png) if png else None)}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(out, indent=1))
    print("\ntruth (expected clicks per user per request at the start): " + "; ".join(
        f"seed {s}: " + ", ".join(f"{k} {v}" for k, v in b["truth"].items()) for s, b in bases.items()))
    print(table(summary))
    print(f"\nwrote {args.json}" + (f", {png}" if png else ""))


if __name__ == "__main__":
    main()
