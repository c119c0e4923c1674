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
                                      "(launch it with `winnow rollout` or `winnow bundles activate`)")) -> None:
    """Fit the configured models on the store's events, write a bundle and (by default) activate it."""
    from winnow.engine import check_engine
    from winnow.training.job import train as run

    cfg = config()
    if engine is not None:
        check_engine(engine)  # a typo fails before the store is opened
    with closing(store()) as st:
        info = run(cfg, st, engine=engine, activate_bundle=activate,
                   progress=lambda msg: typer.echo(msg, err=True))
    typer.echo(f"trained and activated bundle {info.version}" if activate
               else f"trained bundle {info.version} (not activated)")


@app.command("serve")
def serve(host: str = typer.Option("127.0.0.1"), port: int = typer.Option(8000, min=1, max=65535)) -> None:
    """Run the recommendation service (OpenAPI docs at /docs)."""
    from winnow.serving.server import serve as run

    run(config(), host=host, port=port)
