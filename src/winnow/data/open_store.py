"""Open a Store from a URL (the ``[store] url`` setting).

Supported: ``sqlite:///relative/path.db``, ``sqlite:////absolute/path.db``; query parameters
``synchronous`` (full|normal) and ``busy_timeout_ms``, e.g.
``sqlite:////var/lib/winnow/winnow.db?synchronous=normal``.
``postgresql://user[:password]@host:port/dbname`` (or ``postgres://``) opens a PostgresStore
(libpq query parameters pass through; winnow's own: ``pool_min``, ``pool_max``, ``pool_timeout``).
Any other scheme is a ConfigError naming ``[store] url``.
"""

from __future__ import annotations

from urllib.parse import parse_qs

from winnow.core.errors import ConfigError
from winnow.data.store import Store

_PREFIX = "sqlite:///"


def open_store(url: str, *, busy_timeout_ms: int | None = None) -> Store:
    """Store for ``url``; raises ConfigError naming the URL when it cannot be understood."""
    if not isinstance(url, str) or "://" not in url:
        raise ConfigError(f"[store] url must look like 'sqlite:////abs/path/winnow.db', got {url!r}")
    scheme = url.split("://", 1)[0].lower()
    if scheme in ("postgresql", "postgres"):
        from winnow.data.postgres_store import PostgresStore

        return PostgresStore("postgresql://" + url.split("://", 1)[1])
    if scheme != "sqlite":
        raise ConfigError(f"[store] url: unknown scheme {scheme!r} in {url!r} (supported: sqlite, postgresql)")
    if not url.startswith(_PREFIX) or len(url) == len(_PREFIX):
        raise ConfigError(f"[store] url: sqlite url needs a path after 'sqlite:///', got {url!r}")
    path, _, query = url[len(_PREFIX):].partition("?")
    params = {k: v[-1] for k, v in parse_qs(query, keep_blank_values=True).items()}
    unknown = set(params) - {"synchronous", "busy_timeout_ms"}
    if unknown:
        raise ConfigError(f"[store] url: unknown parameter(s) {sorted(unknown)} in {url!r}")
    sync = params.get("synchronous", "full").lower()
    if sync not in ("full", "normal", "extra"):
        raise ConfigError(f"[store] url: synchronous must be full, normal or extra in {url!r}, got {sync!r}")
    try:
        busy = int(params.get("busy_timeout_ms", busy_timeout_ms if busy_timeout_ms is not None else 5000))
    except ValueError:
        raise ConfigError(f"[store] url: busy_timeout_ms must be an integer in {url!r}") from None
    from winnow.data.sqlite_store import SQLiteStore

    return SQLiteStore(path, synchronous=sync, busy_timeout_ms=busy)
