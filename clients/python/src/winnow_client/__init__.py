"""winnow-client: the Python client of the winnow recommendation service.

    from winnow_client import Client

    with Client("http://127.0.0.1:8000", api_key="wn_...") as client:   # or $WINNOW_URL / $WINNOW_API_KEY
        slate = client.recommend("u42", k=10, surface="home")
        client.track("u42", slate.items[0].item_id, "click", request_id=slate.request_id)

``AsyncClient`` has the same methods, awaited. Errors: winnow_client.errors. Docs: docs/CLIENT.md.
"""

from winnow_client.async_client import AsyncClient
from winnow_client.async_tracker import AsyncTracker
from winnow_client.client import Client
from winnow_client.errors import (
    ApiError, AuthenticationError, BadRequestError, ConflictError, FieldError, NotFoundError,
    PayloadTooLargeError, PermissionDeniedError, RateLimitedError, ResponseFormatError, ServerError, TimeoutError,
    TransportError,
    UnavailableError, ValidationError, WinnowError,
)
from winnow_client.models import (
    Activation, AutopilotStatus, Bundle, Bundles, Cycle, CycleGate, CycleStage, DriftStatus, Event, EventsResult, Filters, Health, Item, ItemDetails, ItemPatch,
    Readiness, RecContext, RecItem, Recommendations, Rollout, RolloutCanary, RolloutDecision, RolloutDue,
    RolloutFollowing, RolloutHere, RolloutShadowHere, RolloutNow, RolloutShadow, RolloutStatus, ShadowProcess, ShadowSummary, SimilarItem, SimilarItems, UserDetails,
    UserErased, UserErasure, UserProfile, Written,
)
from winnow_client.retry import NO_RETRY, RetryPolicy
from winnow_client.tracker import Tracker, TrackerOptions, TrackerStats

__version__ = "0.1.0"
__all__ = [
    "NO_RETRY", "Activation", "ApiError", "AutopilotStatus", "Cycle", "CycleGate", "CycleStage", "AsyncClient", "AsyncTracker", "AuthenticationError", "BadRequestError",
    "Bundle", "Bundles", "Client", "ConflictError", "DriftStatus", "Event", "EventsResult", "FieldError", "Filters",
    "Health",
    "Item", "ItemDetails", "ItemPatch", "NotFoundError", "PayloadTooLargeError", "PermissionDeniedError",
    "RateLimitedError", "Readiness", "ResponseFormatError", "RecContext", "RecItem", "Recommendations", "RetryPolicy", "Rollout", "RolloutCanary", "RolloutDecision",
    "RolloutDue", "RolloutFollowing", "RolloutHere", "RolloutShadowHere", "RolloutNow", "RolloutShadow", "RolloutStatus", "ServerError", "ShadowProcess", "ShadowSummary",
    "SimilarItem", "SimilarItems", "TimeoutError", "Tracker", "TrackerOptions", "TrackerStats", "TransportError",
    "UnavailableError", "UserDetails", "UserErased", "UserErasure", "UserProfile", "ValidationError",
    "WinnowError", "Written",
]
