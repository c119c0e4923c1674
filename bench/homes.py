"""Copying a winnow home for a benchmark (a run writes into its home: impressions, online state).

A live home can hold a named pipe (``drift/refresh.fifo``, the drift monitor's wake-up channel)
that ``shutil.copytree`` refuses to copy; the copy leaves it out (the monitor re-creates it).
"""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path


def _specials(folder: str, names: list[str]) -> set[str]:
    """Entries of ``folder`` that are not regular files, folders or links (fifos, sockets)."""
    out = set()
    for n in names:
        mode = os.lstat(os.path.join(folder, n)).st_mode
        if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode) or stat.S_ISLNK(mode)):
            out.add(n)
    return out


def copy_home(src: str | Path, dst: str | Path) -> Path:
    """Copy the home ``src`` to ``dst`` (which must not exist), fifos and sockets left out."""
    shutil.copytree(src, dst, ignore=_specials)
    return Path(dst)
