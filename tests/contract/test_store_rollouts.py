"""The Store contract's rollout part (winnow.data.rollouts), run against every backend in
STORE_FACTORIES (SQLite and a real PostgreSQL server)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from test_store_contract import STORE_FACTORIES

from winnow.core.errors import RolloutError
from winnow.data.rollouts import Rollout, RolloutDecision
from winnow.data.store import Store


@pytest.fixture(params=sorted(STORE_FACTORIES))
def opener(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], Store]:
    return STORE_FACTORIES[request.param](request, tmp_path)


@pytest.fixture
def store(opener: Callable[[], Store]) -> Store:
    s = opener()
    yield s
    s.close()


def _new(challenger: str = "20260101T000000Z-aaaaaa", *, mode: str = "canary") -> Rollout:
    return Rollout(id=0, state=mode, revision=0, started=1000, challenger=challenger,
                   champion="20251201T000000Z-bbbbbb", mode=mode, plan=(1, 5, 100) if mode == "canary" else (),
                   step=0, step_started=1000, params={"sample": 0.2, "margin": 0.05},
                   decisions=(RolloutDecision(1000, 0, "operator", "start", {"by": "test"}),))


def test_start_read_and_compare_and_set(store: Store) -> None:
    assert store.rollout() is None
    r = store.start_rollout(_new())
    assert r.id > 0 and r.revision == 1 and r.running and r.share == 0.01
    got = store.rollout()
    assert got == r and store.rollout(r.id) == r and store.rollout(r.id + 99) is None
    d = RolloutDecision(1060, 0, "step_complete", "next_step", {"ci": [-0.01, 0.02], "n": 2000})
    moved = store.update_rollout(r.id, revision=1, changes={"step": 1, "step_started": 1060}, decision=d)
    assert moved is not None and moved.revision == 2 and moved.step == 1 and moved.share == 0.05
    # a writer that read revision 1 loses: nothing written
    assert store.update_rollout(r.id, revision=1, changes={"state": "rolled_back"}) is None
    again = store.rollout(r.id)
    assert again == moved and again.state == "canary" and [x.rule for x in again.decisions] == ["operator",
                                                                                                "step_complete"]
    assert again.decisions[1].evidence == {"ci": [-0.01, 0.02], "n": 2000}


def test_one_running_rollout_at_most(store: Store) -> None:
    r = store.start_rollout(_new())
    with pytest.raises(RolloutError, match=f"rollout {r.id} .* is running") as err:
        store.start_rollout(_new("20260102T000000Z-cccccc", mode="shadow"))
    assert err.value.status == 409
    assert store.rollout() == r  # nothing written
    done = store.update_rollout(r.id, revision=r.revision, changes={"state": "aborted", "ended": 1100},
                                decision=RolloutDecision(1100, 0, "operator", "abort"))
    assert done is not None and not done.running and done.share == 0.0
    second = store.start_rollout(_new("20260102T000000Z-cccccc", mode="shadow"))
    assert second.id > r.id and store.rollout() == second  # the running one comes first
    assert store.rollout(r.id).state == "aborted"


def test_concurrent_starts_admit_one(opener: Callable[[], Store]) -> None:
    stores = [opener() for _ in range(4)]
    won, lost = [], []
    barrier = threading.Barrier(len(stores))

    def go(i: int, st: Store) -> None:
        barrier.wait()
        try:
            won.append(st.start_rollout(_new(f"20260101T00000{i}Z-aaaaaa")))
        except RolloutError:
            lost.append(i)

    threads = [threading.Thread(target=go, args=(i, st)) for i, st in enumerate(stores)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    try:
        assert len(won) == 1 and len(lost) == len(stores) - 1
        assert stores[0].rollout() == won[0]
    finally:
        for st in stores:
            st.close()


def test_bad_changes_write_nothing(store: Store) -> None:
    r = store.start_rollout(_new())
    with pytest.raises(RolloutError, match="unknown rollout state 'exploded'"):
        store.update_rollout(r.id, revision=1, changes={"state": "exploded"})
    with pytest.raises(RolloutError, match=r"\['colour'\] cannot be changed"):
        store.update_rollout(r.id, revision=1, changes={"colour": "red"})
    with pytest.raises(RolloutError, match="no rollout 999"):
        store.update_rollout(999, revision=1, changes={"step": 1})
    assert store.rollout(r.id) == r


def test_shadow_records_and_durability(opener: Callable[[], Store]) -> None:
    st = opener()
    r = st.start_rollout(_new(mode="shadow"))
    st.log_shadow(r.id, [{"ts": 1000 + i, "overlap": i / 10, "rbo": float("nan")} for i in range(5)])
    st.log_shadow(r.id, [])
    st.close()
    st = opener()
    try:
        rows = st.read_shadow(r.id)
        assert [x["overlap"] for x in rows] == [0.0, 0.1, 0.2, 0.3, 0.4] and rows[0]["rbo"] is None
        assert [x["ts"] for x in st.read_shadow(r.id, limit=2)] == [1003, 1004]
        assert st.read_shadow(r.id + 1) == [] and st.rollout(r.id) == r
    finally:
        st.close()
