"""Column contracts shared by importers, the store and training.

Events travel as a pandas DataFrame with EVENT_COLUMNS (external ids); training reads them as
an ``Interactions`` (dense indices, numpy columns). Items and users travel as DataFrames with
the columns below; every column beyond the named ones is an attribute.
"""

from __future__ import annotations

EVENT_COLUMNS: tuple[str, ...] = (
    "user_id",      # str, required
    "item_id",      # str, required
    "event_type",   # str, required (view, click, add_to_cart, purchase, rating, play, skip, ...)
    "value",        # float, NaN when absent (rating, play count, dwell seconds)
    "timestamp",    # int64 unix seconds, required
    "event_id",     # str or None: idempotency key
    "context",      # JSON object text or None: device, locale, referrer, query, request_id
)
REQUIRED_EVENT_COLUMNS: tuple[str, ...] = ("user_id", "item_id", "timestamp")

ITEM_COLUMNS: tuple[str, ...] = (
    "item_id",      # str, required
    "title",        # str ("" when unknown)
    "text",         # str ("" when unknown)
    "categories",   # list[str] (stored |-separated)
    "creator",      # str ("" when unknown): author / artist / brand
    "created_at",   # int64 unix seconds, or <NA>
    "available",    # bool (default True)
    "sponsored",    # bool (default False)
    "attributes",   # dict[str, JSON scalar]: every other column
)

# the catalog columns that need no JSON decoding (Store.read_item_scalars)
ITEM_SCALARS: tuple[str, ...] = ("item_id", "creator", "created_at", "available", "sponsored")

USER_COLUMNS: tuple[str, ...] = (
    "user_id",      # str, required
    "created_at",   # int64 unix seconds, or <NA>
    "attributes",   # dict[str, JSON scalar]: age, gender, occupation, locale, ...
    "interests",    # list[str]: declared interests (categories, creators or item ids)
)

MAX_ID_LENGTH = 256
