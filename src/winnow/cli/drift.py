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
