"""`winnow drift report`: the ACTIVE bundle's reference profile vs the store's recent window."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from winnow.cli.app import app, closing, config, store

drift_app = typer.Typer(help="Drift monitoring: data drift and concept drift, reported apart.", no_args_is_help=True)
app.add_typer(drift_app, name="drift")


@drift_app.command("report")
def report(json_out: Optional[Path] = typer.Option(None, "--json", help="also write the report here"),
           html_out: Optional[Path] = typer.Option(None, "--html", help="also write the report as an HTML page")) -> None:
    """Data drift (event mix, popularity, activity, new items, source and ranker scores) and
    concept drift (served slates' hit share, the ranker's calibration on served slates)."""
    from winnow.evaluation.drift_html import format_html
    from winnow.evaluation.drift_report import drift_report, format_report

    with closing(store()) as st:
        rep = drift_report(config(), st)
    typer.echo(format_report(rep))
    if json_out is not None:
        json_out.write_text(json.dumps(rep, indent=2), encoding="utf-8")
    if html_out is not None:
        html_out.write_text(format_html(rep), encoding="utf-8")


@drift_app.command("monitor")
def monitor(parent_fd: Optional[int] = typer.Option(
        None, "--parent-fd", hidden=True, help="exit when this pipe reads end-of-file (set by `winnow serve`)"),
        nice: int = typer.Option(0, "--nice", min=0, max=19, help="add this to the process's niceness first"),
        idle: bool = typer.Option(False, "--idle", help="the SCHED_IDLE class (Linux): only idle CPU")) -> None:
    """Run the home's live drift monitor in the foreground: every [drift] refresh_s, the store's
    last window_days vs the ACTIVE bundle's profile, written to <home>/drift/live.json for the
    serving workers to read. `winnow serve` runs one itself with [drift] monitor = "process";
    run this with monitor = "external" (e.g. beside replicas). One per home: exits 3 when
    another monitor holds it."""
    import logging

    from winnow.serving.drift_monitor import run_monitor

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    cfg = config()
    try:
        code = run_monitor(cfg, parent_fd=parent_fd, nice=nice, idle=idle)
    except KeyboardInterrupt:
        code = 0
    raise typer.Exit(code)
