"""One exception tree for winnow. Every error carries the offending value in its message."""

from __future__ import annotations


class WinnowError(Exception):
    """Base class of every error winnow raises on purpose."""


class ConfigError(WinnowError):
    """The configuration is invalid (raised at start-up, never under traffic)."""


class DataError(WinnowError):
    """Input data is invalid. Names the file (or source), the line/row and the reason."""

    def __init__(self, reason: str, *, source: str | None = None, line: int | None = None,
                 field: str | None = None, value: object = None) -> None:
        self.reason = reason
        self.source = source
        self.line = line
        self.field = field
        self.value = value
        parts = []
        if source is not None:
            parts.append(str(source))
        if line is not None:
            parts.append(f"line {line}")
        if field is not None:
            parts.append(f"field {field!r}")
        where = ", ".join(parts)
        msg = f"{where}: {reason}" if where else reason
        if value is not None:
            msg += f" (value: {value!r})"
        super().__init__(msg)


class UnknownIdError(WinnowError, KeyError):
    """An external id (user or item) is not known."""

    def __init__(self, kind: str, external_id: object) -> None:
        self.kind = kind
        self.external_id = external_id
        super().__init__(f"unknown {kind} id: {external_id!r}")

    def __str__(self) -> str:  # KeyError would otherwise repr() the message
        return self.args[0]


class NotFittedError(WinnowError):
    """A model was used before fit() (or load())."""


class StoreError(WinnowError):
    """The store could not complete an operation (nothing of it was written)."""


class StoreUnavailableError(StoreError):
    """The store cannot accept writes right now (read-only, disk full, backend down)."""


class BundleError(WinnowError):
    """A model bundle is missing, corrupt or incompatible."""


class LifecycleError(WinnowError):
    """A ``winnow autopilot`` cycle stopped: names the cycle, the stage and the reason."""


class RolloutError(WinnowError):
    """A rollout request that cannot be honoured; nothing was changed (winnow.rollout).
    ``status``: what the admin API answers (404 nothing to act on, 409 conflicts with the
    current state or bundle, 422 invalid input)."""

    def __init__(self, message: str, *, status: int = 409) -> None:
        self.status = status
        super().__init__(message)
