"""`winnow train --no-activate` and `winnow bundles list | activate | rollback` on the command line:
the admin API's semantics (verify and build before ACTIVE moves; unknown/corrupt refused, nothing changes)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from serve_harness import trained_home
from winnow import bundle as bundles
from winnow.cli import app


def _cli(home: Path, *args: str):
    return CliRunner().invoke(app, ["--home", str(home), *args])


def _winnow(home: Path, *args: str) -> subprocess.CompletedProcess:
    """As users run it: errors become one line on stderr and exit code 2 (winnow.cli.main)."""
    return subprocess.run([sys.executable, "-m", "winnow", "--home", str(home), *args],
                          capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    h = tmp_path_factory.mktemp("cli-bundles")
    trained_home(h, n_users=120, n_items=200, n_events=6000)
    return h


def test_train_no_activate_then_activate_and_rollback(home: Path) -> None:
    first = bundles.active_version(home)
    res = _cli(home, "train", "--no-activate")
    assert res.exit_code == 0, res.output
    challenger = bundles.list_bundles(home)[-1].version
    assert challenger != first and f"trained bundle {challenger} (not activated)" in res.output
    assert bundles.active_version(home) == first  # written, not served

    listed = _cli(home, "bundles", "list")
    assert listed.exit_code == 0, listed.output
    rows = {line.split()[0]: line for line in listed.output.splitlines()[1:]}
    assert set(rows) == {first, challenger}
    assert "*" in rows[first].split() and "*" not in rows[challenger].split()

    res = _cli(home, "bundles", "activate", challenger)
    assert res.exit_code == 0, res.output
    assert bundles.active_version(home) == challenger and f"previous: {first}" in res.output

    res = _cli(home, "bundles", "rollback")
    assert res.exit_code == 0, res.output
    assert bundles.active_version(home) == first and f"rolled back to {first}" in res.output


def test_bad_versions_are_refused_and_change_nothing(home: Path) -> None:
    before = bundles.active_version(home)
    unknown = _winnow(home, "bundles", "activate", "20990101T000000Z-abcdef")
    assert unknown.returncode == 2 and "unknown bundle version" in unknown.stderr
    malformed = _winnow(home, "bundles", "activate", "../etc")
    assert malformed.returncode == 2 and "invalid bundle version '../etc'" in malformed.stderr
    assert bundles.active_version(home) == before


def test_corrupt_bundle_is_refused_before_active_moves(home: Path) -> None:
    before = bundles.active_version(home)
    src = bundles.bundles_dir(home) / before
    bad = bundles.new_version()
    shutil.copytree(src, bundles.bundles_dir(home) / bad)
    manifest = bundles.bundles_dir(home) / bad / "manifest.json"
    manifest.write_text(manifest.read_text().replace(before, bad))  # a valid name, but ...
    (bundles.bundles_dir(home) / bad / "items.npz").write_bytes(b"not the file the manifest names")
    res = _winnow(home, "bundles", "activate", bad)
    assert res.returncode == 2 and "checksum" in res.stderr.lower(), res.stderr
    assert bundles.active_version(home) == before
    shutil.rmtree(bundles.bundles_dir(home) / bad)


def test_rollback_without_history_is_an_error(tmp_path: Path) -> None:
    res = _winnow(tmp_path, "bundles", "rollback")
    assert res.returncode == 2 and "no earlier activated bundle" in res.stderr


def test_active_does_not_move_by_hand_while_a_rollout_runs(tmp_path: Path) -> None:
    """A running rollout compares its challenger with the ACTIVE champion: activate / rollback by
    hand are refused (CLI exit 2, admin route 409) and ACTIVE stays; after an abort they work."""
    from fastapi.testclient import TestClient

    from winnow.core.config import load_config
    from winnow.data.open_store import open_store
    from winnow.rollout import control
    from winnow.serving.app import create_app

    (tmp_path / "winnow.toml").write_text("[security]\nauth = false  # not a test of access control\n")
    trained_home(tmp_path, n_users=120, n_items=200, n_events=6000)
    assert _cli(tmp_path, "train", "--no-activate").exit_code == 0
    champion = bundles.active_version(tmp_path)
    challenger = bundles.list_bundles(tmp_path)[-1].version
    cfg = load_config(tmp_path)
    st = open_store(cfg.store_url())
    try:
        control.start(st, cfg, challenger=challenger, mode="shadow", sample=0.5)
    finally:
        st.close()
    res = _winnow(tmp_path, "bundles", "activate", challenger)
    assert res.returncode == 2 and "is running" in res.stderr and "abort" in res.stderr, res.stderr
    assert _winnow(tmp_path, "bundles", "rollback").returncode == 2
    with TestClient(create_app(cfg)) as c:
        r = c.post(f"/v1/admin/bundles/{challenger}/activate")
        assert r.status_code == 409 and "is running" in r.text, r.text
        assert c.post("/v1/admin/bundles/rollback").status_code == 409
    assert bundles.active_version(tmp_path) == champion
    assert _winnow(tmp_path, "rollout", "abort").returncode == 0
    res = _winnow(tmp_path, "bundles", "activate", challenger)
    assert res.returncode == 0, res.stderr
    assert bundles.active_version(tmp_path) == challenger


def test_a_bundle_the_gate_failed_is_refused_unless_forced(home: Path) -> None:
    before = bundles.active_version(home)
    assert _cli(home, "train", "--no-activate").exit_code == 0
    failed = bundles.list_bundles(home)[-1].version
    bundles.label_bundle(home, failed, {"gate": "failed", "reasons": ["ndcg@20 floor: 0.002 < 0.01"],
                                        "cycle": "c-test", "served": False})
    res = _winnow(home, "bundles", "activate", failed)
    assert res.returncode == 2, res.stderr
    assert "failed the autopilot's gate" in res.stderr and "ndcg@20 floor" in res.stderr
    assert "--force" in res.stderr and bundles.active_version(home) == before
    res = _winnow(home, "bundles", "activate", failed, "--force")
    assert res.returncode == 0, res.stderr
    assert bundles.active_version(home) == failed
    bundles.activate(home, before)  # the module's home, as the other tests found it


def test_the_admin_route_and_the_client_refuse_a_gate_failed_bundle_unless_forced(tmp_path: Path) -> None:
    """The same rule over HTTP (409 naming the gate's reasons; ``?force=true`` activates) and the
    Python client's ``activate_bundle(force=True)`` sends exactly that query."""
    import httpx
    import winnow_client as wc
    from fastapi.testclient import TestClient

    from winnow.core.config import load_config
    from winnow.serving.app import create_app

    (tmp_path / "winnow.toml").write_text("[security]\nauth = false  # not a test of access control\n")
    trained_home(tmp_path, n_users=120, n_items=200, n_events=6000)
    assert _cli(tmp_path, "train", "--no-activate").exit_code == 0
    champion = bundles.active_version(tmp_path)
    failed = bundles.list_bundles(tmp_path)[-1].version
    bundles.label_bundle(tmp_path, failed, {"gate": "failed", "reasons": ["recall@20 drop: -12% < -5%"],
                                            "cycle": "c-api", "served": False})
    with TestClient(create_app(load_config(tmp_path))) as c:
        r = c.post(f"/v1/admin/bundles/{failed}/activate")
        assert r.status_code == 409, r.text
        assert "failed the autopilot's gate" in r.text and "recall@20 drop" in r.text and "?force=true" in r.text
        assert bundles.active_version(tmp_path) == champion and c.get("/readyz").json()["model_version"] == champion
        r = c.post(f"/v1/admin/bundles/{failed}/activate", params={"force": "true"})
        assert r.status_code == 200 and r.json()["serving"] == failed, r.text
    assert bundles.active_version(tmp_path) == failed

    seen: list[httpx.URL] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.url)
        return httpx.Response(200, json={"serving": failed, "previous": champion, "load_seconds": 0.1})

    with wc.Client("http://winnow.test", transport=httpx.MockTransport(answer)) as client:
        assert client.activate_bundle(failed).serving == failed
        client.activate_bundle(failed, force=True)
    assert [dict(u.params) for u in seen] == [{}, {"force": "true"}]
    assert seen[0].path == f"/v1/admin/bundles/{failed}/activate"
