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
