"""Registries: the one list of each kind of pluggable part, resolved lazily by import path.

A ``Registry`` maps a name to either an object or a ``"module:attribute"`` string imported on
first use, so a process that never uses a part never imports it (two-tower pulls in torch,
~1 s and hundreds of MB) and this module, at the bottom of the layers, imports nothing above
``winnow.core``. Two registries exist:

- ``COMPONENTS`` (here): candidate-source kinds, ``[[pipeline.sources]] kind = ...``. Each entry is
  a ``winnow.components.base.Component`` subclass (fit, save, load, become a source). Config
  validates every source kind against it at start-up.
- ``MODELS`` (winnow.models.registry): retrieval models by name (``[ranker] sources``,
  ``winnow evaluate --models``).

Adding a component: one module under ``winnow/components/``, one line in ``COMPONENTS`` below and,
when it has parameters, its ``[models.<section>]`` (core/config_models.py + defaults.toml).
Tests and plug-ins may ``register`` more at run time (and ``unregister`` them).
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Iterator
from typing import Any

from winnow.core.errors import ConfigError


class Registry:
    """Name -> implementation (an object, or a "module:attribute" path imported on first use).

    Iteration and ``names()`` follow registration order (training fits in that order)."""

    def __init__(self, what: str, entries: dict[str, Any]) -> None:
        self.what = what
        self._entries: dict[str, Any] = dict(entries)
        self._lock = threading.Lock()

    def names(self) -> list[str]:
        """Every registered name, in registration order."""
        return list(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._entries))

    def __len__(self) -> int:
        return len(self._entries)

    def unknown(self, name: object) -> str:
        """The message for a name that is not registered: names it and every known one."""
        return f"unknown {self.what} {name!r}; known: {', '.join(self._entries)}"

    def get(self, name: str) -> Any:
        """The implementation registered as ``name`` (imported now if registered by path);
        ConfigError naming the unknown name and the known ones."""
        try:
            entry = self._entries[name]
        except KeyError:
            raise ConfigError(self.unknown(name)) from None
        if isinstance(entry, str):
            module, _, attr = entry.partition(":")
            obj = getattr(importlib.import_module(module), attr)
            with self._lock:
                if self._entries.get(name) is entry:
                    self._entries[name] = obj
            return obj
        return entry

    def register(self, name: str, entry: Any, *, replace: bool = False) -> None:
        """Add ``name`` (an object or a "module:attribute" path); ValueError if it exists and
        ``replace`` is False."""
        with self._lock:
            if name in self._entries and not replace:
                raise ValueError(f"{self.what} {name!r} is already registered")
            self._entries[name] = entry

    def unregister(self, name: str) -> None:
        """Remove ``name`` (no error when absent)."""
        with self._lock:
            self._entries.pop(name, None)


# kind -> Component class. The only list of candidate-source kinds. Order = training order.
COMPONENTS = Registry("source kind", {
    "popularity": "winnow.components.popularity:PopularityComponent",
    "trending": "winnow.components.popularity:TrendingComponent",
    "als": "winnow.components.als:AlsComponent",
    "itemitem": "winnow.components.itemitem:ItemItemComponent",
    "sequence": "winnow.components.itemitem:SequenceComponent",
    "fresh": "winnow.components.popularity:FreshComponent",
    "two_tower": "winnow.components.two_tower:TwoTowerComponent",
    "content": "winnow.components.two_tower:ContentComponent",
    "segment_popular": "winnow.components.segment:SegmentComponent",
})
