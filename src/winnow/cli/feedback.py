"""`winnow ope`, `winnow ab report NAME` and `winnow simulate`: the feedback loop, measured."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer

from winnow.cli.app import app, closing, config, home, store

ab_app = typer.Typer(help="A/B experiments.", no_args_is_help=True)
app.add_typer(ab_app, name="ab")


def _print_estimates(title: str, rows: list[dict], truth: float | None = None) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for col in ("estimator", "estimate", "95% CI", "ESS") + (("rel. error", "truth in CI") if truth else ()):
        table.add_column(col, justify="right")
    for r in rows:
        cells = [r["estimator"], f"{r['value']:.5f}", f"[{r['ci'][0]:.5f}, {r['ci'][1]:.5f}]", f"{r['ess']:.0f}"]
        if truth:
            cells += [f"{abs(r['value'] - truth) / truth:.1%}", "yes" if r["ci"][0] <= truth <= r["ci"][1] else "no"]
        table.add_row(*cells)
    Console().print(table)


@app.command("ope")
def ope(policy: str = typer.Option("greedy", help="candidate policy: greedy | epsilon | softmax | "
                                   "kind=...,key=value (e.g. kind=epsilon_greedy,epsilon=0.05)"),
        surface: Optional[str] = typer.Option(None, help="only impressions of this surface"),
        since: Optional[int] = typer.Option(None, help="only impressions at or after (unix seconds)"),
        reward: str = typer.Option("click", help="comma-separated event types counted as reward"),
        bootstrap: int = typer.Option(1000, min=0, help="bootstrap resamples for the CIs"),
        obd: Optional[Path] = typer.Option(None, help="Open Bandit Dataset directory: estimate bts's CTR "
                                           "from the random log instead of reading the store"),
        campaign: str = typer.Option("all", help="--obd campaign: all | men | women"),
        json_out: Optional[Path] = typer.Option(None, "--json", help="also write the results here")) -> None:
    """Estimate a candidate policy's value (reward per request) from the stored impression log."""
    if obd is not None:
        from winnow.evaluation.obd import evaluate_campaign

        res = evaluate_campaign(obd, campaign, n_bootstrap=bootstrap)
        rows = [{"estimator": k, **v} for k, v in res["estimators"].items()]
        _print_estimates(f"OBD {campaign}: bts CTR from the random log (truth {res['truth']:.5f})", rows,
                         truth=res["truth"])
    else:
        from winnow.evaluation.ope import estimate, log_from_impressions
        from winnow.simulation.loop import policy_spec

        spec = policy_spec(policy)
        with closing(store()) as st:
            log = log_from_impressions(st.impression_outcomes(since=since), st.read_impressions(since=since),
                                       spec, reward_events=tuple(reward.split(",")), surface=surface)
        rows = [{"estimator": e.estimator, "value": e.value, "ci": [e.ci_low, e.ci_high], "ess": e.ess,
                 "n_units": e.n_units} for e in estimate(log, ("ips", "snips", "dr"), n_bootstrap=bootstrap)]
        _print_estimates(f"policy {spec} on {rows[0]['n_units']} logged requests", rows)
        res = {"policy": spec, "estimators": rows}
    if json_out is not None:
        json_out.write_text(json.dumps(res, indent=2), encoding="utf-8")


@ab_app.command("report")
def ab_report(name: str = typer.Argument(..., help="experiment name from [[experiments]], or rollout-<id> (a canary)"),
              out: Optional[Path] = typer.Option(None, help="PNG path (default <home>/reports/ab-NAME.png)"),
              pre_days: float = typer.Option(14.0, help="pre-period days for the CUPED covariates")) -> None:
    """Per-variant metrics, differences with 95% CIs, p-values, SRM check; writes a PNG plot.
    ``rollout-<id>``: a canary's arms (winnow.rollout.experiment: arm of each user's first
    rollout request, the SRM split expected from the plan's steps)."""
    from winnow.evaluation.ab import experiment_frame, format_report, plot_report, report
    from winnow.rollout.experiment import rollout_experiment, rollout_id

    is_rollout = rollout_id(name) is not None
    with closing(store()) as st:
        exp = rollout_experiment(st, name) if is_rollout else config().experiment(name)
        frame = experiment_frame(st, exp, pre_days=pre_days, logged_only=is_rollout)
    rep = report(frame, exp)
    typer.echo(format_report(rep))
    png = plot_report(rep, out if out is not None else home() / "reports" / f"ab-{name}.png")
    (png.with_suffix(".json")).write_text(json.dumps(rep, indent=2), encoding="utf-8")
    typer.echo(f"plot: {png}")


@app.command("simulate")
def simulate_cmd(rounds: int = typer.Option(50, min=1, help="rounds of serve -> click -> retrain"),
                 policy: list[str] = typer.Option(["greedy", "epsilon", "softmax", "thompson"],
                                                  help="policies to compare (repeat the option)"),
                 model: str = typer.Option("als", help="retrieval model: als | popularity | itemitem | ..."),
                 users: int = typer.Option(1000, min=10), items: int = typer.Option(2000, min=20),
                 seed: int = typer.Option(0),
                 ope_check: bool = typer.Option(True, "--ope/--no-ope",
                                                help="also check OPE against simulated truth"),
                 out: Optional[Path] = typer.Option(None, help="report directory (default <home>/simulation)")) -> None:
    """Closed-loop simulation: each policy serves simulated users and is retrained on its own log."""
    from rich.progress import Progress, TaskID

    from winnow.simulation.loop import simulate
    from winnow.simulation.ope_check import ope_check as run_ope_check
    from winnow.simulation.report import summarise, write_report
    from winnow.simulation.users import SimulationConfig

    cfg = SimulationConfig(n_users=users, n_items=items, rounds=rounds, seed=seed)
    wcfg = config()
    runs = {}
    with Progress() as progress:
        for p in policy:
            task = progress.add_task(f"{p:>10}", total=rounds)

            def advance(_round: int, _metrics: dict[str, float], t: TaskID = task) -> None:
                progress.update(t, advance=1)

            runs[p] = simulate(p, cfg, model=model, winnow_config=wcfg, on_round=advance)
    extra: dict[str, Any] = {"config": cfg.to_dict(), "model": model}
    if ope_check:
        checks = [run_ope_check("epsilon", target, cfg, model=model, winnow_config=wcfg)
                  for target in ("greedy", "kind=softmax,temperature=0.5")]
        extra["ope_check"] = checks
    paths = write_report(runs, out if out is not None else home() / "simulation", extra=extra)
    for name, run in runs.items():
        s = summarise(run)
        typer.echo(f"{name:>10}: coverage {s['coverage_final']:.3f}  never shown {s['never_shown_final']:.3f}  "
                   f"gini {s['gini_final']:.3f}  engagement (last 10 rounds) {s['engagement_long_term']:.4f}")
    for chk in extra.get("ope_check", []):
        errs = ", ".join(f"{k} {v['value']:.4f} ({v['relative_error']:.1%})" for k, v in chk["estimators"].items())
        typer.echo(f"OPE {chk['target']} from {chk['logging']}: truth {chk['truth']:.4f}; {errs}")
    typer.echo(f"wrote {', '.join(str(p) for p in paths.values())}")
