"""``AsyncClient``: the asyncio client, the same surface as ``Client`` with ``await``."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any, Optional, Union

import httpx

from winnow_client import _calls as calls
from winnow_client import errors
from winnow_client._calls import M, Call, EventLike, Timeout
from winnow_client.async_tracker import AsyncTracker
from winnow_client.models import (
    Activation, AutopilotStatus, Bundles, DriftStatus, EventsResult, Health, Item, ItemDetails, ItemPatch, Readiness, RecContext,
    Recommendations, RolloutStatus, SimilarItems, UserDetails, UserErasure, UserProfile, Written,
)
from winnow_client.retry import RetryPolicy
from winnow_client.tracker import TrackerOptions

_UNSET: Any = object()


class AsyncClient:
    """The winnow HTTP API on asyncio; arguments as ``Client``. ``track()`` queues events for a
    task on the running loop; ``aclose()`` or leaving ``async with`` flushes them."""

    def __init__(self, base_url: Optional[str] = None, *, api_key: Optional[str] = None,
                 timeout: Timeout = 10.0, retry: RetryPolicy = RetryPolicy(),
                 tracker: TrackerOptions = TrackerOptions(),
                 transport: Optional[httpx.AsyncBaseTransport] = None) -> None:
        self.base_url = calls.base_url(base_url)
        self.api_key = api_key
        self.retry = retry
        self.retried = 0
        self._http = httpx.AsyncClient(base_url=self.base_url, headers=calls.headers(api_key), timeout=timeout,
                                       transport=transport)
        self._tracker_options = tracker
        self._tracker: Optional[AsyncTracker] = None

    async def send(self, call: Call[M], *, timeout: Timeout = _UNSET, retry: Optional[RetryPolicy] = None) -> M:
        """Send ``call``, repeating it as ``retry`` (default: the client's policy) allows."""
        policy = retry or self.retry
        for attempt in range(policy.max_attempts):
            try:
                return await self._once(call, timeout)
            except errors.WinnowError as exc:
                wait = policy.after_failure(exc, attempt=attempt, repeatable=call.route.repeatable)
                if wait is None:
                    raise
            self.retried += 1
            await asyncio.sleep(wait)
        raise AssertionError("unreachable: the last attempt returns or raises")  # pragma: no cover

    async def _once(self, call: Call[M], timeout: Timeout) -> M:
        try:
            response = await self._http.request(call.route.method, call.path, params=call.params, json=call.json,
                                                timeout=self._http.timeout if timeout is _UNSET else timeout)
        except httpx.TransportError as exc:
            raise errors.from_transport(exc, call.route.method, call.path) from exc
        return call.parse(response)

    # --- events and the tracker -------------------------------------------------------------------
    async def send_events(self, events: Iterable[EventLike], *, timeout: Timeout = _UNSET) -> EventsResult:
        """As ``Client.send_events``."""
        return await self.send(calls.send_events(calls.with_ids(events)), timeout=timeout)

    @property
    def tracker(self) -> AsyncTracker:
        if self._tracker is None:
            self._tracker = AsyncTracker(self, self._tracker_options)
        return self._tracker

    async def track(self, user_id: str, item_id: str, event_type: str, *, value: Optional[float] = None,
                    timestamp: Optional[float] = None, event_id: Optional[str] = None,
                    request_id: Optional[str] = None, context: Optional[Mapping[str, Any]] = None) -> bool:
        """As ``Client.track``: True if queued, False if dropped."""
        return await self.tracker.track(user_id, item_id, event_type, value=value, timestamp=timestamp,
                                        event_id=event_id, request_id=request_id, context=context)

    async def flush(self, timeout: Optional[float] = None) -> bool:
        return await self._tracker.flush(timeout) if self._tracker is not None else True

    # --- catalog and users ------------------------------------------------------------------------
    async def upsert_items(self, items: Iterable[Union[Item, Mapping[str, Any]]], *,
                           timeout: Timeout = _UNSET) -> Written:
        return await self.send(calls.upsert_items(items), timeout=timeout)

    async def get_item(self, item_id: str, *, timeout: Timeout = _UNSET) -> ItemDetails:
        return await self.send(calls.get_item(item_id), timeout=timeout)

    async def patch_item(self, item_id: str, patch: ItemPatch, *, timeout: Timeout = _UNSET) -> Written:
        return await self.send(calls.patch_item(item_id, patch), timeout=timeout)

    async def put_user(self, user_id: str, profile: UserProfile, *, timeout: Timeout = _UNSET) -> Written:
        return await self.send(calls.put_user(user_id, profile), timeout=timeout)

    async def get_user(self, user_id: str, *, timeout: Timeout = _UNSET) -> UserDetails:
        return await self.send(calls.get_user(user_id), timeout=timeout)

    async def delete_user(self, user_id: str, *, timeout: Timeout = _UNSET) -> UserErasure:
        return await self.send(calls.delete_user(user_id), timeout=timeout)

    # --- recommendations --------------------------------------------------------------------------
    async def recommend(self, user_id: str, *, k: Optional[int] = None, surface: Optional[str] = None,
                        exclude: Optional[Sequence[str]] = None, explain: bool = False,
                        context: Union[RecContext, Mapping[str, Any], None] = None,
                        timeout: Timeout = _UNSET) -> Recommendations:
        return await self.send(calls.recommend(user_id, k=k, surface=surface, exclude=exclude, explain=explain,
                                               context=context), timeout=timeout)

    async def similar_items(self, item_id: str, *, k: Optional[int] = None,
                            timeout: Timeout = _UNSET) -> SimilarItems:
        return await self.send(calls.similar_items(item_id, k), timeout=timeout)

    # --- admin and health -------------------------------------------------------------------------
    async def bundles(self, *, timeout: Timeout = _UNSET) -> Bundles:
        return await self.send(calls.bundles(), timeout=timeout)

    async def activate_bundle(self, version: str, *, force: bool = False, timeout: Timeout = _UNSET) -> Activation:
        """Verify, load and swap to ``version``; 409 (refused) while a rollout runs, or when the
        autopilot's gate failed the bundle and not ``force``."""
        return await self.send(calls.activate(version, force), timeout=timeout)

    async def rollback_bundle(self, *, timeout: Timeout = _UNSET) -> Activation:
        return await self.send(calls.rollback(), timeout=timeout)

    async def drift(self, *, timeout: Timeout = _UNSET) -> DriftStatus:
        """The service's live drift monitor: latest report (data and concept drift apart), history."""
        return await self.send(calls.drift(), timeout=timeout)

    async def refresh_drift(self, *, timeout: Timeout = _UNSET) -> DriftStatus:
        """Ask the home's drift monitor process to compare now and answer that result (every worker
        then serves it); UnavailableError (503) when no monitor runs for the server's home."""
        return await self.send(calls.refresh_drift(), timeout=timeout)

    async def autopilot(self, *, last: Optional[int] = None, timeout: Timeout = _UNSET) -> AutopilotStatus:
        """The autopilot's newest ``last`` cycles (server default 10; newest last): trigger, stages
        with timings and peak RSS, gate results and reasons, hand-off (``winnow autopilot status``)."""
        return await self.send(calls.autopilot(last), timeout=timeout)

    # --- rollouts (admin scope; docs/ROLLOUT.md) ---------------------------------------------------
    async def rollout(self, *, timeout: Timeout = _UNSET) -> RolloutStatus:
        """The running (else latest) rollout: state, arms, every decision; NotFoundError if none."""
        return await self.send(calls.rollout(), timeout=timeout)

    async def start_shadow(self, bundle: str, *, sample: Optional[float] = None,
                           timeout: Timeout = _UNSET) -> RolloutStatus:
        """Shadow ``bundle``: it also answers a ``sample`` of requests, off the response path.
        ConflictError when a rollout runs or the bundle is corrupt; NotFoundError when unknown."""
        return await self.send(calls.start_shadow(bundle, sample), timeout=timeout)

    async def start_canary(self, bundle: str, *, plan: Optional[Sequence[int]] = None,
                           step_min: Union[str, float, None] = None, min_exposed: Optional[int] = None,
                           timeout: Timeout = _UNSET) -> RolloutStatus:
        """Canary ``bundle`` (users move to it step by step; decisions are automatic). A bad plan:
        ValidationError; a rollout running: ConflictError."""
        return await self.send(calls.start_canary(bundle, plan=plan, step_min=step_min, min_exposed=min_exposed),
                               timeout=timeout)

    async def promote_rollout(self, *, timeout: Timeout = _UNSET) -> RolloutStatus:
        """Promote the running rollout's challenger (it becomes ACTIVE); NotFoundError if none runs."""
        return await self.send(calls.promote_rollout(), timeout=timeout)

    async def abort_rollout(self, *, timeout: Timeout = _UNSET) -> RolloutStatus:
        """Abort the running rollout (challenger share -> 0); NotFoundError if none runs."""
        return await self.send(calls.abort_rollout(), timeout=timeout)

    async def health(self, *, timeout: Timeout = _UNSET) -> Health:
        return await self.send(calls.health(), timeout=timeout)

    async def ready(self, *, timeout: Timeout = _UNSET) -> Readiness:
        return await self.send(calls.ready(), timeout=timeout)

    # --- lifecycle ----------------------------------------------------------------------------------
    async def aclose(self, timeout: Optional[float] = 10.0) -> None:
        """Flush the tracker (at most ``timeout`` s; what is left is counted as dropped), then close."""
        if self._tracker is not None:
            await self._tracker.aclose(timeout)
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, exc_type: Optional[type[BaseException]], exc: Optional[BaseException],
                        tb: Optional[TracebackType]) -> None:
        await self.aclose()
