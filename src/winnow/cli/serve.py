"""`winnow train` and `winnow serve`: build a model bundle, run the HTTP service."""

from __future__ import annotations

from typing import Optional

import typer

from winnow.cli.app import app, closing, config, store


@app.command("train")
def train(engine: Optional[str] = typer.Option(
        None, "--engine", help="local | ray (default: [training] engine). Ray runs two-tower training "
        "and the ranker's feature job on Ray ([training] ray_address, num_workers)."),
        activate: bool = typer.Option(True, "--activate/--no-activate",
                                      help="--no-activate: write a challenger without serving it "
                                      "(launch it with `winnow rollout` or `winnow bundles activate`)"),
        warm_from: Optional[str] = typer.Option(
            None, "--warm-from", metavar="BUNDLE_DIR|active|off",
            help="continue ALS and the two-tower from this bundle's factors / weights (\"active\": the "
            "ACTIVE bundle; \"off\": from scratch); default: [training] warm_start")) -> None:
    """Fit the configured models on the store's events, write a bundle and (by default) activate it."""
    from winnow.engine import check_engine
    from winnow.training.job import train as run

    cfg = config()
    if engine is not None:
        check_engine(engine)  # a typo fails before the store is opened
    if warm_from not in (None, "off", "active"):
        from winnow.bundle.warm import resolve_warm_spec

        resolve_warm_spec(cfg.home, warm_from)  # so does a path that is not a directory
    with closing(store()) as st:
        info = run(cfg, st, engine=engine, activate_bundle=activate, warm_from=warm_from,
                   progress=lambda msg: typer.echo(msg, err=True))
    typer.echo(f"trained and activated bundle {info.version}" if activate
               else f"trained bundle {info.version} (not activated)")


@app.command("serve")
def serve(host: str = typer.Option("127.0.0.1"), port: int = typer.Option(8000, min=1, max=65535)) -> None:
    """Run the recommendation service (OpenAPI docs at /docs)."""
    from winnow.serving.server import serve as run

    run(config(), host=host, port=port)
