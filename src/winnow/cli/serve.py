"""`winnow train` and `winnow serve`: build a model bundle, run the HTTP service."""

from __future__ import annotations

import typer

from winnow.cli.app import app, closing, config, store


@app.command("train")
def train() -> None:
    """Fit the configured models on the store's events, write a bundle and activate it."""
    from winnow.training.job import train as run

    with closing(store()) as st:
        info = run(config(), st)
    typer.echo(f"trained and activated bundle {info.version}")


@app.command("serve")
def serve(host: str = typer.Option("127.0.0.1"), port: int = typer.Option(8000, min=1, max=65535)) -> None:
    """Run the recommendation service (OpenAPI docs at /docs)."""
    from winnow.serving.server import serve as run

    run(config(), host=host, port=port)
