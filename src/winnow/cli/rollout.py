"""`winnow rollout shadow | canary | status | promote | abort`: launch a challenger bundle.

The same functions as the admin routes under /v1/admin/rollout (winnow.rollout.control): the
state goes to the store and every running server follows it within ``[rollout] poll_s``;
decisions (guardrails, sequential test, step ends) are taken by the servers. Refusals (unknown or
corrupt bundle, bad plan, a rollout already running, nothing to promote) exit with code 2 and
one line naming the problem; nothing is changed.
"""

from __future__ import annotations

import json
from typing import Optional

import typer

from winnow.cli.app import app, closing, config, store

rollout_app = typer.Typer(help="Launch a challenger bundle: shadow, canary, promote, abort.", no_args_is_help=True)
app.add_typer(rollout_app, name="rollout")


def _show(as_json: bool = False) -> None:
    from winnow.rollout.report import format_report, report

    with closing(store()) as st:
        rep = report(st, config())
    typer.echo(json.dumps(rep, indent=2) if as_json else format_report(rep))


@rollout_app.command("shadow")
def shadow(bundle: str = typer.Argument(..., help="challenger version (`winnow bundles list`)"),
           sample: Optional[float] = typer.Option(None, help="share of requests it also answers "
                                                  "(default [rollout] sample)")) -> None:
    """The challenger answers a sample of live requests off the response path; nothing it does is served."""
    from winnow.rollout import control

    with closing(store()) as st:
        r = control.start(st, config(), challenger=bundle, mode="shadow", sample=sample, by="cli")
    typer.echo(f"rollout {r.id}: shadow of {bundle} against {r.champion}, sample {r.params['sample']}")


@rollout_app.command("canary")
def canary(bundle: str = typer.Argument(..., help="challenger version (`winnow bundles list`)"),
           plan: Optional[str] = typer.Option(None, help="challenger percent per step, e.g. 1,5,25,50,100"),
           step_min: Optional[str] = typer.Option(None, "--step-min", help="least time per step: 30m, 90s, 2h"),
           min_exposed: Optional[int] = typer.Option(None, "--min-exposed",
                                                     help="challenger users exposed before a step may end")) -> None:
    """Move users to the challenger step by step; guardrails and a sequential test decide."""
    from winnow.rollout import control

    steps = control.parse_plan(plan) if plan is not None else None
    step_s = control.parse_duration(step_min) if step_min is not None else None
    with closing(store()) as st:
        r = control.start(st, config(), challenger=bundle, mode="canary", plan=steps, step_s=step_s,
                          min_exposed=min_exposed, by="cli")
    typer.echo(f"rollout {r.id}: canary of {bundle} against {r.champion}, plan {list(r.plan)}, "
               f"step {r.params['step_s']:.0f} s, min exposed {r.params['min_exposed']}")


@rollout_app.command("status")
def status(as_json: bool = typer.Option(False, "--json", help="the full record and evidence as JSON")) -> None:
    """State, arms, the sequential test now, and every decision with its rule."""
    _show(as_json)


@rollout_app.command("promote")
def promote() -> None:
    """Make the running rollout's challenger ACTIVE now."""
    from winnow.rollout import control

    with closing(store()) as st:
        r = control.operator(st, config().home, "promote", by="cli")
    typer.echo(f"rollout {r.id}: promoted {r.challenger} (ACTIVE)")


@rollout_app.command("abort")
def abort() -> None:
    """Stop the running rollout: the champion serves everyone."""
    from winnow.rollout import control

    with closing(store()) as st:
        r = control.operator(st, config().home, "abort", by="cli")
    typer.echo(f"rollout {r.id}: aborted; {r.champion} serves everyone")
