"""Access control, limits and erasure against a REAL server process with API keys required.

Keys are made with the real CLI (`python -m winnow keys ...`), so the tests also cover
`winnow keys create/list/revoke` and the file they write.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys

import httpx
import pytest
from serve_harness import Server, make_home
from servers.throwaway import wait_for

from winnow.core.config import load_config
from winnow.data.open_store import open_store
from winnow.serving.app import create_app
from winnow.serving.auth import OPEN, required_scope


def _cli(home, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "winnow", "--home", str(home), *args],
                          check=False, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "OPENBLAS_NUM_THREADS": "1"})


def _key(home, scope: str) -> str:
    out = _cli(home, "keys", "create", "--scope", scope, "--name", f"test-{scope}")
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def _h(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    home = tmp_path_factory.mktemp("security")
    make_home(home, n_users=120, n_items=200, n_events=4000)
    keys = {s: _key(home, s) for s in ("read", "write", "admin")}
    server = Server(home, auth=True, env={"WINNOW__SERVING__MAX_EVENTS_PER_REQUEST": "100",
                                          "WINNOW__SERVING__MAX_BODY_BYTES": "200000"})
    client = httpx.Client(base_url=server.url, timeout=30)
    yield home, server, client, keys
    client.close()
    server.stop()


def test_every_route_is_open_only_by_name_and_admin_by_default(tmp_path):
    cfg = load_config(tmp_path)
    app = create_app(cfg)
    try:
        paths = app.openapi()["paths"]
    finally:
        app.state.service.close()
    decided = {(m.upper(), p): required_scope(m, p, cfg.security) for p, ops in paths.items() for m in ops}
    assert len(decided) > 10
    assert {k for k, v in decided.items() if v is OPEN} == {("GET", "/healthz"), ("GET", "/readyz")}
    assert decided[("GET", "/metrics")] == "admin"
    assert decided[("POST", "/v1/admin/bundles/{version}/activate")] == "admin"
    assert decided[("DELETE", "/v1/users/{user_id}")] == "write"
    assert decided[("GET", "/v1/users/{user_id}/recommendations")] == "read"
    assert all(v == "admin" for (m, p), v in decided.items() if p.startswith(("/ui/api", "/v1/admin")))
    assert required_scope("GET", "/v1/some/future/route", cfg.security) == "admin"


def test_missing_or_wrong_key_is_401_and_health_stays_open(served):
    _, _, client, keys = served
    assert client.get("/healthz").status_code == 200 and client.get("/readyz").status_code == 200
    r = client.get("/v1/users/u1/recommendations")
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    assert "missing API key" in r.json()["detail"]
    good = keys["read"]
    for bad in (good[:-1] + ("A" if good[-1] != "A" else "B"), "wn_00000000_" + "x" * 43, "garbage", "-"):
        r = client.get("/v1/users/u1/recommendations", headers=_h(bad))
        assert r.status_code == 401, (bad, r.text)
    assert client.get("/v1/users/u1/recommendations", headers={"Authorization": f"Basic {good}"}).status_code == 401
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers=_h(keys["admin"])).status_code == 200


def test_scopes_are_enforced_with_403(served):
    _, _, client, keys = served
    read, write, admin = keys["read"], keys["write"], keys["admin"]
    ev = {"events": [{"user_id": "sec-u", "item_id": "i1", "event_type": "view"}]}
    assert client.get("/v1/users/u1/recommendations", headers=_h(read)).status_code == 200
    assert client.get("/v1/items/i1/similar", headers={"X-API-Key": read}).status_code == 200
    for method, path, body, token, code in [
        ("POST", "/v1/events", ev, read, 403), ("POST", "/v1/events", ev, write, 200),
        ("POST", "/v1/events", ev, admin, 403), ("GET", "/v1/users/u1/recommendations", None, write, 403),
        ("GET", "/v1/users/u1", None, read, 403), ("GET", "/v1/users/u1", None, write, 200),
        ("GET", "/v1/admin/bundles", None, write, 403), ("GET", "/v1/admin/bundles", None, admin, 200),
        ("POST", "/v1/admin/bundles/rollback", None, read, 403), ("DELETE", "/v1/users/u2", None, read, 403),
    ]:
        r = client.request(method, path, json=body, headers=_h(token))
        assert r.status_code == code, (method, path, r.status_code, r.text)
        if code == 403:
            assert "lacks scope" in r.json()["detail"]


def test_key_file_holds_only_hashes_and_revocation_applies_to_the_running_server(served):
    home, _, client, _ = served
    token = _key(home, "read")
    key_id = token.split("_")[1]
    text = (home / "keys.json").read_text()
    assert token not in text and token.split("_", 2)[2] not in text and key_id in text
    assert stat.S_IMODE((home / "keys.json").stat().st_mode) == 0o600
    listing = _cli(home, "keys", "list").stdout
    assert key_id in listing and "sha256" not in listing
    # a running server re-reads the key file within ~1 s; 30 s bounds a loaded machine
    assert wait_for(lambda: client.get("/v1/users/u1/recommendations", headers=_h(token)).status_code == 200)
    out = _cli(home, "keys", "revoke", key_id)
    assert out.returncode == 0 and "revoked" in out.stdout
    assert wait_for(lambda: client.get("/v1/users/u1/recommendations", headers=_h(token)).status_code == 401)
    assert json.loads((home / "keys.json").read_text())["keys"][-1]["revoked_at"] is not None
    bad = _cli(home, "keys", "create", "--scope", "read,root")
    assert bad.returncode == 2 and "root" in bad.stderr


def test_limits_answer_413_or_422_with_a_message(served):
    _, _, client, keys = served
    w, r_ = _h(keys["write"]), _h(keys["read"])
    many = {"events": [{"user_id": "u1", "item_id": "i1", "event_type": "view"}] * 101}
    r = client.post("/v1/events", json=many, headers=w)
    assert r.status_code == 413 and "limit is 100" in r.json()["detail"]
    big = b'{"items": [' + b",".join([b'{"item_id": "x", "title": "' + b"t" * 1000 + b'"}'] * 300) + b"]}"
    r = client.post("/v1/items", content=big, headers={**w, "content-type": "application/json"})
    assert r.status_code == 413 and "limit is 200000" in r.json()["detail"]

    def chunks():  # no Content-Length: the limit must still hold
        yield b'{"items": ['
        for _ in range(300):
            yield b'{"item_id": "x", "title": "' + b"t" * 1000 + b'"},'
        yield b'{"item_id": "y"}]}'
    r = client.post("/v1/items", content=chunks(), headers={**w, "content-type": "application/json"})
    assert r.status_code == 413 and "limit" in r.json()["detail"]
    r = client.get("/v1/users/u1/recommendations", params={"k": 10_000}, headers=r_)
    assert r.status_code == 422 and "k" in r.json()["detail"]
    r = client.get("/v1/users/" + "u" * 300 + "/recommendations", headers=r_)
    assert r.status_code == 422
    r = client.post("/v1/events", json={"events": [{"user_id": "u" * 300, "item_id": "i1", "event_type": "v"}]},
                    headers=w)
    assert r.status_code == 422 and "user_id" in r.text


def test_bundle_ids_never_reach_the_file_system(served):
    _, _, client, keys = served
    a = _h(keys["admin"])
    for bad in ("..%2F..%2Fetc", "..", "20260101T000000Z-abcdeg", "x" * 41, "%2Fetc%2Fpasswd"):
        r = client.post(f"/v1/admin/bundles/{bad}/activate", headers=a)
        assert r.status_code in (404, 422), (bad, r.status_code)
    r = client.post("/v1/admin/bundles/20260101T000000Z-abcdef/activate", headers=a)
    assert r.status_code == 404 and "unknown bundle version" in r.json()["detail"]


def test_delete_user_erases_data_and_says_what_remains(served):
    home, _, client, keys = served
    w, rd = _h(keys["write"]), _h(keys["read"])
    evs = [{"user_id": "gdpr-1", "item_id": f"i{j}", "event_type": "view", "event_id": f"gdpr-{j}"}
           for j in range(12)]
    assert client.post("/v1/events", json={"events": evs}, headers=w).json()["written"] == 12
    assert client.put("/v1/users/gdpr-1", json={"attributes": {"email_hash": "abc"}}, headers=w).status_code == 200
    assert client.get("/v1/users/gdpr-1/recommendations", headers=rd).status_code == 200
    assert client.get("/v1/users/gdpr-1", headers=w).json()["event_count"] == 12
    r = client.delete("/v1/users/gdpr-1", headers=w)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["erased"]["events"] == 12 and body["erased"]["profile"] is True
    assert body["erased"]["impressions"] >= 1
    assert body["remains"]["user_in_bundle"] is False and "winnow train" in body["remains"]["note"]
    assert client.get("/v1/users/gdpr-1", headers=w).status_code == 404
    assert client.delete("/v1/users/gdpr-1", headers=w).status_code == 404
    trained = client.delete("/v1/users/u3", headers=w).json()  # a user the active bundle was trained on
    assert trained["erased"]["events"] > 0 and trained["remains"]["user_in_bundle"] is True
    store = open_store(load_config(home).store_url())
    try:
        assert len(store.user_events("gdpr-1")) == 0 and len(store.user_events("u3")) == 0
        log = store.read_events()
        assert "gdpr-1" not in log.user_ids and "u3" not in log.user_ids
        assert not [i for i in store.read_impressions() if i["user_id"] in ("gdpr-1", "u3")]
    finally:
        store.close()


def test_open_read_mode_is_explicit(tmp_path):
    make_home(tmp_path, n_users=60, n_items=100, n_events=1500, train=False)
    server = Server(tmp_path, auth=True, env={"WINNOW__SECURITY__OPEN_READ": "true",
                                               "WINNOW__SECURITY__METRICS": "open"})
    try:
        with httpx.Client(base_url=server.url, timeout=30) as c:
            assert c.get("/v1/users/u1/recommendations").status_code == 200
            assert c.get("/metrics").status_code == 200
            assert c.post("/v1/events", json={"events": []}).status_code == 401
            assert c.get("/v1/admin/bundles").status_code == 401
    finally:
        server.stop()
