"""`winnow autopilot` (long-running; `--once` for one cycle) and `winnow autopilot status`."""

from __future__ import annotations

import typer

from winnow.cli.app import app, closing, config, store

autopilot_app = typer.Typer(help="Continuous training: snapshot -> fit -> gate -> hand off, on a schedule.")
app.add_typer(autopilot_app, name="autopilot")


@autopilot_app.callback(invoke_without_command=True)
def autopilot(ctx: typer.Context,
              once: bool = typer.Option(False, "--once", help="run (or resume) one cycle, then exit")) -> None:
    """Keep the served bundle current ([lifecycle] config). Runs beside `winnow serve`, never inside it."""
    if ctx.invoked_subcommand is not None:
        return
    from winnow.lifecycle.cycle import run_once
    from winnow.lifecycle.loop import run_forever

    cfg = config()
    with closing(store()) as st:
        if once:
            run_once(cfg, st, say=typer.echo)
        else:
            try:
                run_forever(cfg, st, say=typer.echo)
            except KeyboardInterrupt:
                typer.echo("autopilot stopped")


@autopilot_app.command("status")
def status(last: int = typer.Option(10, min=1, help="how many recent cycles to show")) -> None:
    """Cycles, their stages, timings and gate results."""
    from winnow.cyclelog.record import load_records
    from winnow.cyclelog.status import format_status

    typer.echo(format_status(load_records(config().home), last=last))
