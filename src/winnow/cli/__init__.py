"""The `winnow` command line. Thin: each command parses options and calls one library function."""

from __future__ import annotations

import os
import sys

# implicit's ALS/BPR run their own thread pool; a second one inside OpenBLAS oversubscribes the
# cores (implicit warns on every fit). Must be set before numpy loads; an explicit value wins.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from winnow.cli import data, evaluate, serve  # noqa: F401  (register commands)
from winnow.cli import feedback  # noqa: F401  (ope, ab report, simulate)
from winnow.cli import keys  # noqa: F401  (keys create/list/revoke)
from winnow.cli import lifecycle  # noqa: F401  (autopilot, autopilot status)
from winnow.cli import drift  # noqa: F401  (drift report)
from winnow.cli import bundles  # noqa: F401  (bundles list/activate/rollback)
from winnow.cli import rollout  # noqa: F401  (rollout shadow/canary/status/promote/abort)
from winnow.cli.app import app
from winnow.core.errors import WinnowError


def main() -> None:
    """Console entry point: a WinnowError becomes one clear line on stderr and exit code 2."""
    try:
        app()
    except WinnowError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
