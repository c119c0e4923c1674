"""Resolve a dataset name or directory to a training ``Dataset`` for offline evaluation.

Names: ``ml-100k``, ``ml-latest-small``, ``lastfm`` (read from the data directory, by default
$WINNOW_DATA or ../shared/data next to the working directory), ``synthetic[:USERS,ITEMS,EVENTS]``
(generated, seeded), ``store`` (the events in the --home store). A directory path is detected
by its files (u.data -> ml-100k, ratings.csv -> ml-latest-small, user_artists.dat -> Last.fm).
"""

from __future__ import annotations

import os
from pathlib import Path

from winnow.core.config import WinnowConfig
from winnow.core.errors import ConfigError
from winnow.data.importers import Imported
from winnow.data.interactions import Dataset

_DIRS = {"ml-100k": "ml-100k", "ml-latest-small": "ml-latest-small",
         "lastfm": "lastfm-hetrec2011-2k"}


def default_data_dir() -> Path:
    """$WINNOW_DATA, else the first of ./../shared/data and ./shared/data that exists."""
    env = os.environ.get("WINNOW_DATA")
    if env:
        return Path(env)
    for cand in (Path.cwd().parent / "shared" / "data", Path.cwd() / "shared" / "data"):
        if cand.is_dir():
            return cand
    return Path.cwd().parent / "shared" / "data"


def read_directory(path: Path) -> Imported:
    """Import a dataset directory, detecting its layout from the files it holds."""
    if (path / "u.data").is_file():
        from winnow.data.importers.movielens_100k import load
    elif (path / "ratings.csv").is_file():
        from winnow.data.importers.movielens_small import load
    elif (path / "user_artists.dat").is_file():
        from winnow.data.importers.lastfm import load
    else:
        raise ConfigError(f"{path}: not a known dataset layout (expected u.data, ratings.csv "
                          "or user_artists.dat)")
    return load(path)


def _synthetic(spec: str, seed: int) -> Imported:
    from winnow.data.synthetic import generate_world

    sizes = (2000, 1000, 100_000)
    if ":" in spec:
        try:
            sizes = tuple(int(x) for x in spec.split(":", 1)[1].split(","))  # type: ignore[assignment]
        except ValueError:
            raise ConfigError(f"bad synthetic spec {spec!r}; expected synthetic:USERS,ITEMS,EVENTS") from None
        if len(sizes) != 3 or min(sizes) < 1:
            raise ConfigError(f"bad synthetic spec {spec!r}; expected three positive sizes")
    world = generate_world(*sizes, seed=seed)
    return Imported(source=spec, events=world.events, items=world.items, users=world.users)


def load_named_dataset(name: str, config: WinnowConfig, *, data_dir: Path | None = None,
                       seed: int = 0) -> Dataset:
    """The Dataset for ``name`` (see module docstring); ConfigError when it cannot be found."""
    from winnow.data.training_data import dataset_from_frames, load_dataset

    if name == "store":
        from winnow.data.open_store import open_store

        store = open_store(config.store_url())
        try:
            return load_dataset(store, config.events, name="store")
        finally:
            store.close()
    if name.startswith("synthetic"):
        imported = _synthetic(name, seed)
    else:
        path = Path(name)
        if not path.is_dir():
            if name not in _DIRS:
                raise ConfigError(f"unknown dataset {name!r}; use one of {sorted(_DIRS)}, "
                                  "synthetic[:U,I,E], store, or a directory")
            path = (data_dir or default_data_dir()) / _DIRS[name]
            if not path.is_dir():
                raise ConfigError(f"dataset {name!r} not found at {path} (set --data-dir or WINNOW_DATA)")
        imported = read_directory(path)
    return dataset_from_frames(imported.events, imported.items, imported.users, config.events,
                               name=name)
