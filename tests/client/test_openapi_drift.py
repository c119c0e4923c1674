"""The client's models and routes against the running server's /openapi.json: a field renamed,
added, dropped, retyped or made (not) required on either side fails here, and so does a route
the client calls that the server no longer has (or a query parameter it no longer reads)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from pydantic import BaseModel
from winnow_client import _calls, models

BY_CLASS = {m.__name__: m.server_schema for m in models.MODELS}
EVENT_BODY = "#inline:/v1/events"  # the events body is declared inline (the route parses rows itself)


@pytest.fixture(scope="module")
def spec(served) -> dict[str, Any]:
    return httpx.get(served.url + "/openapi.json", timeout=30).json()


def _types(schema: dict[str, Any], names: dict[str, str]) -> frozenset[str]:
    """A property schema as a set of type names (refs by their server schema name)."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[1]
        return frozenset({"ref:" + names.get(name, name)})
    if "anyOf" in schema:
        return frozenset().union(*(_types(s, names) for s in schema["anyOf"]))
    kind = schema.get("type")
    if kind == "array":
        return frozenset({f"array[{','.join(sorted(_types(schema.get('items', {}), names)))}]"})
    return frozenset({kind if kind else "any"})


def _shape(schema: dict[str, Any], names: dict[str, str]) -> dict[str, tuple[frozenset[str], bool]]:
    required = set(schema.get("required", []))
    return {name: (_types(prop, names), name in required) for name, prop in schema.get("properties", {}).items()}


def _server_schema(spec: dict[str, Any], name: str) -> dict[str, Any]:
    if name == "EventIn":
        body = spec["paths"]["/v1/events"]["post"]["requestBody"]["content"]["application/json"]["schema"]
        return body["properties"]["events"]["items"]
    schemas = spec["components"]["schemas"]
    return schemas.get(name) or schemas[f"{name}-Output"]


@pytest.mark.parametrize("model", models.MODELS, ids=lambda m: m.__name__)
def test_model_matches_the_server_schema(spec, model: type[BaseModel]):
    request = issubclass(model, models._Request)
    mine = model.model_json_schema(mode="validation" if request else "serialization")
    ours = _shape(mine, BY_CLASS)
    theirs = _shape(_server_schema(spec, model.server_schema), {})
    assert sorted(ours) == sorted(theirs), f"{model.__name__} fields differ from {model.server_schema}"
    diff = {f: (ours[f], theirs[f]) for f in ours if ours[f] != theirs[f]}
    assert not diff, f"{model.__name__} vs {model.server_schema}: (client, server) types/required differ: {diff}"


def test_every_route_the_client_calls_exists_with_its_parameters_and_bodies(spec):
    for route in _calls.ROUTES:
        op = spec["paths"].get(route.path, {}).get(route.method.lower())
        assert op is not None, f"the server has no {route.method} {route.path}"
        params = {p["name"] for p in op.get("parameters", []) if p["in"] == "query"}
        assert set(route.query) <= params, f"{route.method} {route.path}: unknown query {set(route.query) - params}"
        ok = op["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
        assert ok == route.response.server_schema, f"{route.method} {route.path} answers {ok}"
        body = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
        if route.body is None:
            assert body is None, f"{route.method} {route.path} takes a body the client does not send"
        elif route is _calls.EVENTS:
            assert body["properties"]["events"]["type"] == "array"
        else:
            assert _types(body, {}) - {"null"} == {"ref:" + route.body.server_schema}


def test_the_client_covers_every_public_route(spec):
    """Every route of the API (the dashboard's /ui and the per-worker item statistics aside) has
    a client call: a route added to the server without one fails here."""
    covered = {(r.method, r.path) for r in _calls.ROUTES}
    served = {(m.upper(), p) for p, ops in spec["paths"].items() for m in ops}
    left = {(m, p) for m, p in served - covered
            if not p.startswith(("/ui", "/v1/admin/item-stats")) and p not in ("/metrics",)}
    assert not left, f"routes without a client call: {sorted(left)}"


def test_a_drifted_field_would_be_caught(spec):
    """The comparison itself can fail: a model with a renamed and a retyped field differs."""
    class Drifted(models._Response):
        server_schema = "EventsOut"
        received: str
        written_count: int
    ours = _shape(Drifted.model_json_schema(mode="serialization"), {})
    assert ours != _shape(_server_schema(spec, "EventsOut"), {})
