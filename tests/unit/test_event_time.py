"""Event timestamps: unix seconds or RFC 3339 strings with an offset; anything else a 422 that
names the row, the field and the accepted forms."""

from __future__ import annotations

import orjson
import pytest
from fastapi.testclient import TestClient

from winnow.core.config import load_config
from winnow.serving.app import create_app
from winnow.serving.errors import ApiError
from winnow.serving.routes_data import parse_events


def _rows(*stamps) -> bytes:
    body = {"events": [{"user_id": "u1", "item_id": "i1", "event_type": "click", "timestamp": t} for t in stamps]}
    return orjson.dumps(body)


@pytest.mark.parametrize("stamp, seconds", [
    (1767225600, 1767225600), (1767225600.9, 1767225600), ("1767225600", 1767225600),
    ("2026-01-01T00:00:00Z", 1767225600), ("2026-01-01t00:00:00.250z", 1767225600),
    ("2026-01-01T01:30:00+01:30", 1767225600), ("2025-12-31T19:00:00-05:00", 1767225600),
    ("1970-01-01T00:00:00Z", 0),
])
def test_accepted_forms_become_unix_seconds(stamp, seconds):
    assert parse_events(_rows(stamp), max_events=10, max_bytes=10_000)[0]["timestamp"] == seconds


@pytest.mark.parametrize("stamp, says", [
    ("2026-01-01T00:00:00", "no UTC offset"),
    ("2026-01-01", "no UTC offset"),
    ("yesterday", "neither unix seconds nor an RFC 3339 date-time"),
    ("2026-02-30T00:00:00Z", "neither unix seconds nor an RFC 3339"),
    (1767225600000, "unix milliseconds? send seconds"),
    ("9999-01-01T00:00:00Z", "past the year 3000"),
    ("1969-12-31T23:59:59Z", "greater than or equal to 0"),
    (-1, "greater than or equal to 0"),
    (True, "boolean"),
    ([1], "valid integer"),
])
def test_other_values_are_422_naming_row_field_and_value(stamp, says):
    with pytest.raises(ApiError) as info:
        parse_events(_rows(1767225600, stamp), max_events=10, max_bytes=10_000)
    err = info.value
    assert err.status == 422 and len(err.errors) == 1
    assert err.errors[0]["row"] == 1 and err.errors[0]["field"] == "timestamp"
    assert says in err.errors[0]["message"]


def test_openapi_declares_both_forms(tmp_path):
    app = create_app(load_config(tmp_path))
    try:
        with TestClient(app) as c:
            spec = c.get("/openapi.json").json()
    finally:
        app.state.service.close()
    body = spec["paths"]["/v1/events"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    ts = body["properties"]["events"]["items"]["properties"]["timestamp"]
    forms = [s for alt in ts["anyOf"] for s in alt.get("anyOf", [alt])]
    assert {"type": "string", "format": "date-time"} in forms
    assert {f.get("type") for f in forms} == {"integer", "number", "string", "null"}
