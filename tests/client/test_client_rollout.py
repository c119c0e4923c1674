"""The rollout admin calls (Client and AsyncClient) against a REAL `winnow serve` with a trained
challenger: typed answers (RolloutStatus and the models in it), refusals as typed errors, the
admin scope required. A home of its own: a second bundle would change what the other client
tests see of /v1/admin/bundles."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
import winnow_client as wc
from serve_harness import Server, make_home
from servers.throwaway import wait_for
from typer.testing import CliRunner
from winnow_client import AsyncClient, Client, RolloutNow, RolloutStatus, ShadowSummary

from winnow import bundle as bundles
from winnow.cli import app
from winnow.core.config import load_config
from winnow.serving.auth import KeyFile, keys_path


@pytest.fixture(scope="module")
def rollout_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, dict[str, str], str, str]]:
    home = tmp_path_factory.mktemp("client-rollout")
    make_home(home, n_users=150, n_items=200, n_events=5000)
    res = CliRunner().invoke(app, ["--home", str(home), "train", "--no-activate"])
    assert res.exit_code == 0, res.output
    champion = bundles.active_version(home)
    challenger = [b.version for b in bundles.list_bundles(home) if b.version != champion][-1]
    key_file = KeyFile(keys_path(load_config(home)))
    keys = {s: key_file.create([s], name=f"rollout-{s}")[1] for s in ("read", "admin")}
    keys["all"] = key_file.create(["read", "admin"], name="rollout-all")[1]
    server = Server(home, auth=True, env={"WINNOW__ROLLOUT__POLL_S": "0.2"})
    yield server, keys, champion, challenger
    server.stop()


def test_shadow_through_the_client_typed_end_to_end(rollout_server) -> None:
    server, keys, champion, challenger = rollout_server
    with Client(server.url, api_key=keys["all"], timeout=30) as c:
        with pytest.raises(wc.NotFoundError, match="no rollout yet"):
            c.rollout()
        with pytest.raises(wc.NotFoundError, match="unknown bundle"):
            c.start_shadow("20990101T000000Z-abcdef")
        with pytest.raises(wc.ConflictError, match="already the active one"):
            c.start_shadow(champion)
        with pytest.raises(wc.ValidationError, match="not strictly increasing"):
            c.start_canary(challenger, plan=[5, 1, 100])
        with pytest.raises(Exception, match="less than or equal to 1"):  # checked before any request
            c.start_shadow(challenger, sample=2.0)
        started = c.start_shadow(challenger, sample=1.0)
        assert isinstance(started, RolloutStatus)
        assert (started.rollout.state, started.rollout.mode, started.rollout.challenger) == ("shadow", "shadow",
                                                                                               challenger)
        assert started.rollout.champion == champion and started.rollout.decisions[0].action == "start"
        with pytest.raises(wc.ConflictError, match="is running"):
            c.start_canary(challenger)

        def shadowed() -> RolloutStatus | None:
            c.recommend("u1", k=5)
            st = c.rollout()
            return st if st.here.challenger_loaded == challenger and st.shadow and st.shadow.requests > 0 else None

        st = wait_for(shadowed, timeout=60, interval=0.1)
        assert st, "no shadowed request within 60 s"
        assert isinstance(st.shadow, ShadowSummary) and st.shadow.errors == 0 and st.now is None
        assert st.shadow.overlap is not None and 0.0 <= st.shadow.overlap <= 1.0
        ended = c.abort_rollout()
        assert ended.rollout.state == "aborted" and not ended.rollout.running
        assert [d.action for d in ended.rollout.decisions] == ["start", "abort"]
        with pytest.raises(wc.NotFoundError, match="no rollout is running"):
            c.promote_rollout()
    with Client(server.url, api_key=keys["read"], timeout=30) as c:
        with pytest.raises(wc.PermissionDeniedError):
            c.rollout()


def test_canary_through_the_async_client(rollout_server) -> None:
    server, keys, champion, challenger = rollout_server

    async def run() -> None:
        async with AsyncClient(server.url, api_key=keys["admin"], timeout=30) as c:
            st = await c.start_canary(challenger, plan=[50, 100], step_min="1h", min_exposed=5)
            assert st.rollout.state == "canary" and st.rollout.plan == [50, 100] and st.rollout.share == 0.5
            assert st.rollout.params["step_s"] == 3600.0 and st.rollout.params["min_exposed"] == 5
            assert isinstance(st.now, RolloutNow) and st.shadow is None
            assert st.now.due is None and st.now.evidence["waiting"] == "step duration"
            assert set(st.now.evidence["arms"]) == {"champion", "challenger"}
            assert (await c.abort_rollout()).rollout.state == "aborted"
            with pytest.raises(wc.NotFoundError):
                await c.abort_rollout()

    asyncio.run(run())
    assert bundles.active_version(server.home) == champion
