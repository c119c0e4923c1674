"""A serving process's garbage-collector policy (serving.swap.settle(and_later=True),
``[serving] gc_freeze``): what survives a full collection is frozen while a service runs, so
later full collections traverse only what became long-lived since. Sound only if the request
path makes no cyclic garbage that outlives a request (a frozen cycle is never reclaimed): that is
checked here too, on the default bundle with its learned ranker (compiled trees)."""

from __future__ import annotations

import gc
from pathlib import Path

import pytest
from serve_harness import make_home

from winnow.core.config import load_config
from winnow.serving import swap
from winnow.serving.service import Service


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("gc_policy")
    make_home(path, n_users=150, n_items=300, n_events=8000)
    return path


def ask(svc: Service, user: str, *, explain: bool = False) -> None:
    svc.recommend(user, k=10, surface="default", exclude=[], explain=explain, categories=None, context={})


def test_the_request_path_makes_no_cyclic_garbage(home: Path) -> None:
    svc = Service(load_config(home))
    try:
        assert svc.runtime.pipeline.ranker.model.compiled_ is not None  # the learned ranker serves
        users = [f"u{i}" for i in range(60)] + ["nobody-1", "nobody-2"]  # known and cold users
        for u in users:  # first calls fill caches once
            ask(svc, u)
        gc.collect()
        enabled = gc.isenabled()
        gc.disable()
        try:
            for u in users * 3:
                ask(svc, u)
            found = gc.collect()
            # explain=true: LightGBM's pred_contrib leaves ctypes cycles, garbage as soon as the
            # request ends: a young collection reclaims them (only one alive during a full
            # collection could be frozen)
            for u in users[:20]:
                ask(svc, u, explain=True)
            young = gc.collect(0)
            left = gc.collect()
        finally:
            if enabled:
                gc.enable()
        assert found == 0, f"{found} objects in reference cycles after {len(users) * 3} requests"
        assert young > 0 and left == 0, (young, left)
    finally:
        svc.close()


def test_survivors_of_a_full_collection_are_frozen_while_a_service_runs(
        home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Counts, not equalities: a frozen object freed by reference counting leaves the count."""
    before = swap._freeze_users  # services of this process that asked for the policy (0 unless a test left one open)
    svc = Service(load_config(home))
    try:
        assert swap._freeze_users == before + 1
        kept = [[i] for i in range(5000)]  # tracked, alive through the collection
        frozen = gc.get_freeze_count()
        gc.collect()
        assert gc.get_freeze_count() >= frozen + len(kept)
    finally:
        svc.close()
    assert swap._freeze_users == before  # the policy leaves with the service
    if before == 0:
        kept2 = [[i] for i in range(5000)]
        frozen = gc.get_freeze_count()
        gc.collect()
        assert gc.get_freeze_count() < frozen + len(kept2)  # collected as usual, not frozen
    monkeypatch.setenv("WINNOW__SERVING__GC_FREEZE", "false")
    svc = Service(load_config(home))
    try:
        assert swap._freeze_users == before  # turned off: not asked for
    finally:
        svc.close()
