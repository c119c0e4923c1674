"""The served funnel fitted on given frames and answering users offline.

``fit_served`` imports events, items and users into the SQLite store of a scratch home, runs
`winnow train`'s job there (``evaluate_models=False``: the bundle is what the service would
load; nothing is evaluated on a hold-out) and activates the bundle; ``ServedFunnel.recommend``
answers users through winnow.serving.batch (the service's Pipeline, exploration off) as of
one second after the newest training event. The scratch home's config is the caller's with the
store and online state moved into the scratch home (``scratch_config``): the user's own store
and Redis are never touched.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from winnow.bundle import BundleInfo
from winnow.core.config import WinnowConfig
from winnow.data.importers import Imported, import_into
from winnow.data.open_store import open_store
from winnow.serving.batch import UserList, recommend_users
from winnow.training.job import train


def scratch_config(config: WinnowConfig, home: Path) -> WinnowConfig:
    """``config`` with its home, store (embedded SQLite) and online state (in-process) in ``home``."""
    store = config.store.model_copy(update={"url": "sqlite:///{home}/winnow.db"})
    online = config.online.model_copy(update={"url": "memory://"})
    return config.model_copy(update={"home": Path(home), "store": store, "online": online})


@dataclass(frozen=True)
class ServedFunnel:
    """A scratch home holding an active bundle fitted on the given frames.

    Attributes:
        config: the scratch home's config (``scratch_config``).
        info: the bundle `winnow train` wrote and activated.
        now: unix seconds every request is answered at (newest training event + 1).
    """

    config: WinnowConfig
    info: BundleInfo
    now: float

    def recommend(self, user_ids: Sequence[str], *, k: int, exclude: Sequence[Sequence[str]] | None = None,
                  allowed: Sequence[str] | None = None, workers: int = 1) -> list[UserList]:
        """Each user's top-k from the service's Pipeline (winnow.serving.batch.recommend_users):
        ``exclude[i]``: item ids user i must not get; ``allowed``: the only item ids any user
        may get; ``workers``: processes (same lists for any number)."""
        return recommend_users(self.config, user_ids, k=k, now=self.now, exclude=exclude, allowed=allowed,
                               workers=workers)


def fit_served(imported: Imported, config: WinnowConfig, home: Path, *,
               progress: Callable[[str], None] | None = None) -> ServedFunnel:
    """Import ``imported`` into the scratch home ``home`` (created; must hold no store yet) and
    train and activate a bundle there with ``config`` (``scratch_config``)."""
    cfg = scratch_config(config, home)
    Path(home).mkdir(parents=True, exist_ok=True)
    store = open_store(cfg.store_url())
    try:
        import_into(store, imported)
        info = train(cfg, store, evaluate_models=False, progress=progress or (lambda _msg: None))
    finally:
        store.close()
    now = float(imported.events["timestamp"].max()) + 1.0
    return ServedFunnel(cfg, info, now)
