"""winnow-client type-checks under ``mypy --strict`` (also run by `make lint`), and so does code
using it the way docs/CLIENT.md shows; a wrong use is an error the checker reports."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

CLIENT = Path(__file__).resolve().parents[2] / "clients" / "python"

USE = '''
from winnow_client import AsyncClient, Client, Recommendations, TrackerOptions

def slate(client: Client, user: str) -> list[str]:
    out: Recommendations = client.recommend(user, k=10, exclude=["i1"], context={"device": "web"})
    client.track(user, out.items[0].item_id, "click", request_id=out.request_id)
    return out.item_ids

async def aslate(client: AsyncClient, user: str) -> float:
    out = await client.recommend(user, k=5)
    return out.items[0].score

opts = TrackerOptions(batch_size=100, overflow="block", block_timeout=0.01)
'''
WRONG = USE + '''
def wrong(client: Client) -> int:
    return client.recommend("u1").request_id
'''


def _mypy(tmp_path: Path, *targets: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mypy", "--strict", "--config-file", str(CLIENT / "pyproject.toml"),
                           "--cache-dir", str(tmp_path / "mypy-cache"), *targets],
                          capture_output=True, text=True, timeout=300, cwd=CLIENT)


def test_client_and_its_documented_use_pass_mypy_strict(tmp_path):
    (tmp_path / "use.py").write_text(USE)
    out = _mypy(tmp_path, "src", str(tmp_path / "use.py"))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Success: no issues found" in out.stdout


def test_a_type_error_in_a_caller_is_reported(tmp_path):
    (tmp_path / "wrong.py").write_text(WRONG)
    out = _mypy(tmp_path, str(tmp_path / "wrong.py"))
    assert out.returncode == 1 and 'Incompatible return value type (got "str", expected "int")' in out.stdout
