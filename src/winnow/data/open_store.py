"""Open a Store from a URL (the ``[store] url`` setting).

Supported: ``sqlite:///relative/path.db``, ``sqlite:////absolute/path.db``; query parameters
``synchronous`` (full|normal) and ``busy_timeout_ms``, e.g.
``sqlite:////var/lib/winnow/winnow.db?synchronous=normal``. Any other scheme is a ConfigError
(a PostgreSQL backend would add its scheme here).
"""

from __future__ import annotations

from urllib.parse import parse_qs

from winnow.core.errors import ConfigError
from winnow.data.store import Store

_PREFIX = "sqlite:///"


def open_store(url: str, *, busy_timeout_ms: int | None = None) -> Store:
    """Store for ``url``; raises ConfigError naming the URL when it cannot be understood."""
    if not isinstance(url, str) or "://" not in url:
        raise ConfigError(f"store url must look like 'sqlite:////abs/path/winnow.db', got {url!r}")
    scheme = url.split("://", 1)[0].lower()
    if scheme != "sqlite":
        raise ConfigError(f"unknown store url scheme {scheme!r} in {url!r} (supported: sqlite)")
    if not url.startswith(_PREFIX) or len(url) == len(_PREFIX):
        raise ConfigError(f"sqlite url needs a path after 'sqlite:///', got {url!r}")
    path, _, query = url[len(_PREFIX):].partition("?")
    params = {k: v[-1] for k, v in parse_qs(query, keep_blank_values=True).items()}
    unknown = set(params) - {"synchronous", "busy_timeout_ms"}
    if unknown:
        raise ConfigError(f"unknown store url parameter(s) {sorted(unknown)} in {url!r}")
    sync = params.get("synchronous", "full").lower()
    if sync not in ("full", "normal", "extra"):
        raise ConfigError(f"synchronous must be full, normal or extra in {url!r}, got {sync!r}")
    try:
        busy = int(params.get("busy_timeout_ms", busy_timeout_ms if busy_timeout_ms is not None else 5000))
    except ValueError:
        raise ConfigError(f"busy_timeout_ms must be an integer in {url!r}") from None
    from winnow.data.sqlite_store import SQLiteStore

    return SQLiteStore(path, synchronous=sync, busy_timeout_ms=busy)
