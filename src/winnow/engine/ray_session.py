"""The Ray session of a training run: configuration checks, start/join, shutdown.

``RaySession(training_config, home=...)`` is a context manager. With ``ray_address = ""`` it starts
a private local Ray instance (``num_workers + 1`` logical CPUs: one per Ray Train worker plus
the train controller; no dashboard) and stops it on exit; with ``"auto"`` or ``"ray://..."`` it
joins that cluster and leaves it running. Misconfiguration is a ``ConfigError`` naming the
``[training]`` field, raised before any work starts.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Self

from winnow.core.config import TrainingConfig
from winnow.core.errors import ConfigError

log = logging.getLogger(__name__)
ENGINES = ("local", "ray")
RAY_PIN = "ray[data,train]==2.60.0"


def check_engine(name: str) -> str:
    """``name`` if it is a known engine, else ConfigError listing the known ones."""
    if name not in ENGINES:
        raise ConfigError(f"[training] engine / --engine: unknown engine {name!r}; choose one of {list(ENGINES)}")
    return name


def import_ray() -> Any:
    """The ray module, or a ConfigError saying how to install it."""
    try:
        import ray
        import ray.data  # noqa: F401
        import ray.train.torch  # noqa: F401
    except ImportError as exc:
        raise ConfigError(f"[training] engine = \"ray\" needs Ray: pip install 'winnow[ray]' ({exc})") from None
    return ray


class RaySession:
    """Connects to (or starts) Ray for one training run; see the module docstring. The jobs
    (``ray_train``, ``ray_batch``, ``ray_features``) run inside one; ``RayEngine`` puts them
    behind the engine interface."""

    def __init__(self, cfg: TrainingConfig, *, home: Path) -> None:
        self.cfg = cfg
        self.workdir = Path(cfg.workdir.replace("{home}", str(home))).resolve()
        self._started = False
        self.ray: Any = None

    @property
    def num_workers(self) -> int:
        return self.cfg.num_workers

    def __enter__(self) -> Self:
        ray = import_ray()
        self.ray = ray
        address = self.cfg.ray_address.strip()
        if address and not (address == "auto" or address.startswith(("ray://", "ray:")) or ":" in address):
            raise ConfigError(f"[training] ray_address {address!r} is not 'auto', 'host:port' or 'ray://host:port'")
        self.workdir.mkdir(parents=True, exist_ok=True)
        if ray.is_initialized():  # an enclosing session (tests, notebooks) owns it
            pass
        elif address:
            try:
                ray.init(address=address, include_dashboard=False, log_to_driver=False,
                         logging_level=logging.WARNING)
            except Exception as exc:  # ConnectionError, RuntimeError, ValueError by Ray version
                raise ConfigError(f"[training] ray_address {address!r}: cannot join the Ray cluster "
                                  f"({type(exc).__name__}: {exc})") from None
        else:
            os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
            ray.init(num_cpus=self.cfg.num_workers + 1, include_dashboard=False, log_to_driver=False,
                     logging_level=logging.WARNING)
            self._started = True
        cpus = float(ray.cluster_resources().get("CPU", 0))
        if cpus < self.cfg.num_workers:
            self.close()
            raise ConfigError(f"[training] num_workers = {self.cfg.num_workers} but the Ray cluster has "
                              f"{cpus:g} CPUs")
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False
        ctx.print_on_execution_start = False
        return self

    def close(self) -> None:
        if self._started and self.ray is not None and self.ray.is_initialized():
            self.ray.shutdown()
        self._started = False

    def __exit__(self, *exc: object) -> None:
        self.close()

    def describe(self) -> dict[str, Any]:
        """What the manifest records about the engine."""
        return {"name": "ray", "version": self.ray.__version__ if self.ray else None,
                "workers": self.cfg.num_workers, "partitions": self.cfg.partitions,
                "address": self.cfg.ray_address or "local"}
