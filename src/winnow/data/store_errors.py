"""The Store contract's driver-error mapping: a class decorator that makes every public method
of the contract (``Store``'s public callables) re-raise a backend driver's exceptions as the
contract's StoreError / StoreUnavailableError, naming the backend."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from winnow.core.errors import StoreError
from winnow.data.store import Store

S = TypeVar("S", bound=type[Store])


def maps_driver_errors(driver: tuple[type[Exception], ...],
                       translate: Callable[[Any, Exception], StoreError]) -> Callable[[S], S]:
    """Class decorator for a Store implementation: every public method of the Store contract
    re-raises an exception of the ``driver`` types as ``translate(store, exc)`` (a StoreError
    or StoreUnavailableError naming the backend), chained to the driver's exception."""

    def decorate(cls: S) -> S:
        for name in _CONTRACT:
            setattr(cls, name, _mapped(getattr(cls, name), driver, translate))
        return cls
    return decorate


def _mapped(fn: Callable[..., Any], driver: tuple[type[Exception], ...],
            translate: Callable[[Any, Exception], StoreError]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def method(self: Store, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(self, *args, **kwargs)
        except driver as exc:
            raise translate(self, exc) from exc
    return method


# the public methods of the contract (what callers may call on any store)
_CONTRACT = tuple(name for name, value in vars(Store).items() if callable(value) and not name.startswith("_"))
