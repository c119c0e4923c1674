"""Schema fuzzing of the whole OpenAPI surface with schemathesis (bounded for CI).

Every operation of /openapi.json gets generated requests in BOTH of schemathesis' generation
modes: positive (requests that fit the schema) and negative (requests that violate it: wrong
types, missing required fields, out-of-range values). They are sent to the real app (ASGI, in
process) over a trained home with access control ON and a key holding every scope, so requests
reach the handlers. The home runs as deployed: its drift monitor is a real `winnow drift monitor`
process beside the app (``[drift] monitor = "external"``; `winnow serve` would start it itself),
so the drift routes answer from the monitor rather than "no monitor is running" (503). Checks: no 5xx (``not_a_server_error``) and every response body matches its
declared schema (``response_schema_conformance``).

Bounded: ``FUZZ_EXAMPLES`` examples per operation and mode (default 100; 24 operations,
17 of them with inputs to vary, so ~3,400 cases; FUZZ_EXAMPLES=500 for a longer local run).
Not derandomized: every run draws new cases from a fresh seed, printed with the case count and
on failure; ``FUZZ_SEED=N`` replays a run.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, seed, settings
from schemathesis.checks import not_a_server_error, response_schema_conformance
from schemathesis.generation.modes import GenerationMode
from fastapi.testclient import TestClient
from serve_harness import make_home
from servers.throwaway import wait_for

from winnow.core.config import load_config
from winnow.evaluation.drift_shared import SharedResult
from winnow.serving.app import create_app
from winnow.serving.auth import KeyFile, keys_path

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "100"))
SEED = int(os.environ.get("FUZZ_SEED") or random.SystemRandom().randrange(2**31))
_TOKEN: dict[str, str] = {}


@pytest.fixture(scope="module")
def fuzz_home(tmp_path_factory) -> Iterator[Path]:
    home: Path = tmp_path_factory.mktemp("fuzz")
    cfg = make_home(home, n_users=80, n_items=150, n_events=2500)
    _, _TOKEN["all"] = KeyFile(keys_path(cfg)).create(["read", "write", "admin"], name="fuzz")
    toml = home / "winnow.toml"
    toml.write_text((toml.read_text() if toml.exists() else "") + '\n[drift]\nmonitor = "external"\n')
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    monitor = subprocess.Popen([sys.executable, "-m", "winnow", "--home", str(home), "drift", "monitor"],
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert wait_for(lambda: monitor.poll() is None and SharedResult(home).monitor_running(), timeout=120), \
            f"the drift monitor never started (exit {monitor.poll()})"
        yield home
    finally:
        monitor.terminate()
        monitor.wait(30)


@pytest.fixture
def api_schema(fuzz_home: Path):
    """A fresh app per test: schemathesis' pytest plugin ends the ASGI lifespan (which closes
    the service) when the test that started it ends."""
    app = create_app(load_config(fuzz_home))
    yield schemathesis.openapi.from_asgi("/openapi.json", app)
    app.state.service.close()


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=str)
def test_no_server_errors_and_responses_match_the_schema(api_schema, mode: GenerationMode):
    # (driven by hypothesis directly: schemathesis' pytest plugin does not support pytest 9 yet)
    headers = {"Authorization": f"Bearer {_TOKEN['all']}"}
    failures: list[str] = []
    cases: dict[str, int] = {}
    has_inputs: set[str] = set()  # operations with parameters or a body (the others: 1 case)
    for n, result in enumerate(api_schema.get_all_operations()):
        op = result.ok()
        if len(op.path_parameters) + len(op.query) + len(op.body):
            has_inputs.add(op.label)
        elif mode is GenerationMode.NEGATIVE:
            continue  # no input to make invalid (hypothesis would find no case to run)
        cases[op.label] = 0

        @seed(SEED + n)
        @given(case=op.as_strategy(generation_mode=mode))
        @settings(max_examples=EXAMPLES, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        def fuzz(case) -> None:
            cases[op.label] += 1
            case.call_and_validate(headers=headers, checks=[not_a_server_error, response_schema_conformance])

        try:
            fuzz()
        except Exception as exc:  # noqa: BLE001 - collect every operation's failure, then report
            failures.append(f"{op.label}: {exc}")
    print(f"fuzz {mode}: {sum(cases.values())} cases over {len(cases)} operations (FUZZ_SEED={SEED})")
    assert len(cases) >= 15, cases
    # every operation was really exercised (hypothesis stops early only when it runs out of cases)
    thin = {label: k for label, k in cases.items() if label in has_inputs and k < min(EXAMPLES, 10)}
    assert not thin, f"operations with too few generated cases in {mode} mode: {thin}"
    assert not failures, f"FUZZ_SEED={SEED} replays this run\n\n" + "\n\n".join(failures)


@pytest.mark.parametrize("method, path, body", [
    ("PUT", "/v1/users/u1", {"created_at": 2**63}),
    ("POST", "/v1/items", {"items": [{"item_id": "i-big", "created_at": 2**63}]}),
    ("POST", "/v1/users/u1/recommendations", {"time": 2**63}),
])
def test_timestamps_past_int64_are_refused_not_a_500(fuzz_home: Path, method: str, path: str, body: dict):
    """Found by the positive fuzzing: an integer time past int64 reached the store and raised
    (500); the schemas now bound every unix time to the year 3000, as events already were."""
    app = create_app(load_config(fuzz_home))
    with TestClient(app, raise_server_exceptions=False) as client:
        r = client.request(method, path, json=body, headers={"Authorization": f"Bearer {_TOKEN['all']}"})
    assert r.status_code == 422, r.text
    assert "less than or equal to 32503680000" in r.text
