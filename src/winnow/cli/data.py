"""`winnow import ...`: load data into the store, all-or-nothing per import."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from winnow.cli.app import app, closing, store

import_app = typer.Typer(help="Import data into the store (all-or-nothing per import).",
                         no_args_is_help=True)
app.add_typer(import_app, name="import")


def _report_import(counts: dict[str, int]) -> None:
    typer.echo("imported " + ", ".join(f"{v:,} {k}" for k, v in counts.items()))


def _import(imported) -> None:
    from winnow.data.importers import import_into

    with closing(store()) as st:
        _report_import(import_into(st, imported))


@import_app.command("movielens")
def import_movielens(path: Path = typer.Argument(..., exists=True, file_okay=False,
                                                 help="ml-100k or ml-latest-small directory")) -> None:
    """Import a MovieLens directory (ml-100k or ml-latest-small layout, detected)."""
    from winnow.evaluation.datasets import read_directory

    if not ((path / "u.data").is_file() or (path / "ratings.csv").is_file()):
        raise typer.BadParameter(f"{path} has neither u.data (ml-100k) nor ratings.csv (ml-latest-small)")
    _import(read_directory(path))


@import_app.command("lastfm")
def import_lastfm(path: Path = typer.Argument(..., exists=True, file_okay=False,
                                              help="hetrec2011-lastfm-2k directory")) -> None:
    """Import Last.fm hetrec2011 (user_artists.dat play counts, artists, tags)."""
    from winnow.data.importers.lastfm import load

    _import(load(path))


@import_app.command("csv")
def import_csv(events: Optional[Path] = typer.Option(None, exists=True, dir_okay=False,
                                                     help="events CSV/Parquet"),
               items: Optional[Path] = typer.Option(None, exists=True, dir_okay=False),
               users: Optional[Path] = typer.Option(None, exists=True, dir_okay=False)) -> None:
    """Import generic CSV or Parquet files (header-driven; extra columns become attributes)."""
    from winnow.data.importers.generic import load

    _import(load(events=events, items=items, users=users))


@import_app.command("synthetic")
def import_synthetic(users: int = typer.Option(2000, min=1), items: int = typer.Option(1000, min=1),
                     events: int = typer.Option(100_000, min=1), seed: int = typer.Option(0)) -> None:
    """Generate the seeded synthetic world and import it."""
    from winnow.data.importers import Imported
    from winnow.data.synthetic import generate_world

    world = generate_world(users, items, events, seed=seed)
    _import(Imported(source=f"synthetic(seed={seed})", events=world.events, items=world.items,
                     users=world.users))


class _closing:
    def __init__(self, store) -> None:
        self.store = store

    def __enter__(self):
        return self.store

    def __exit__(self, *exc) -> None:
        self.store.close()


