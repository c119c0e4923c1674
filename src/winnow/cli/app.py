"""The `winnow` Typer application, its global options and shared helpers.

`--home DIR` (or $WINNOW_HOME) selects the data directory holding winnow.toml, the store and
model bundles. Commands live in sibling modules, one group each, and register on ``app``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

app = typer.Typer(help="winnow: a production recommendation engine.", no_args_is_help=True,
                  add_completion=False, pretty_exceptions_enable=False)


class _State:
    home: Path = Path(".winnow")


@app.callback()
def _root(home: Optional[Path] = typer.Option(None, "--home", envvar="WINNOW_HOME",
                                              help="Data directory (config, store, bundles).")) -> None:
    _State.home = home if home is not None else Path(".winnow")


def home() -> Path:
    """The selected data directory (created on first use)."""
    _State.home.mkdir(parents=True, exist_ok=True)
    return _State.home


def config(overrides: dict[str, Any] | None = None):
    """The validated configuration of the selected home."""
    from winnow.core.config import load_config

    return load_config(home(), overrides=overrides)


def store():
    """The configured store (caller closes it, e.g. with ``closing``)."""
    from winnow.data.open_store import open_store

    return open_store(config().store_url())


class closing:
    """Context manager closing a store."""

    def __init__(self, obj) -> None:
        self.obj = obj

    def __enter__(self):
        return self.obj

    def __exit__(self, *exc) -> None:
        self.obj.close()
