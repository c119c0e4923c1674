"""The two-tower's item text input: one encoder per config, and the vectors of one fit.

``text_encoder(config, corpus)`` is the configured encoder (TF-IDF fitted on ``corpus``): what
fit, query encoding and serving's new items use, so all three share one text space.
``prepare_text(config, frame, cache=)`` encodes a catalog's texts (MiniLM vectors reused from
the home's cache: winnow.models.text_cache) into a ``PreparedText``. ``resolve_backend`` turns
``text_backend = "auto"`` into "minilm" or "tfidf" by the catalog's size, with its reason;
``prepare_resolved`` does both for a fit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from winnow.core.config import TwoTowerConfig
from winnow.models.content import MiniLMEncoder, TfidfSvdEncoder, item_texts, make_text_encoder
from winnow.models.text_cache import encode_cached


@dataclass(frozen=True)
class PreparedText:
    """Item text vectors for one fit: ``encoder`` (the fitted TF-IDF encoder a bundle saves, None
    for MiniLM / no text), ``vectors`` float32 [n_items, d] (d = 0 without text), ``report``
    (winnow.models.text_cache: encoded / cached / empty; the manifest's engine.two_tower.text)."""

    encoder: TfidfSvdEncoder | None
    vectors: np.ndarray
    report: dict[str, Any]


def resolve_backend(config: TwoTowerConfig, n_items: int) -> tuple[str, str | None]:
    """(backend used, why) for a catalog of ``n_items``: "auto" is MiniLM up to
    ``text_auto_max_items`` items and TF-IDF above; any other setting is used as it is (None)."""
    if config.text_backend != "auto":
        return config.text_backend, None
    limit = config.text_auto_max_items
    if n_items <= limit:
        return "minilm", f"text_backend 'auto': {n_items} items <= text_auto_max_items={limit}"
    return "tfidf", (f"text_backend 'auto': {n_items} items > text_auto_max_items={limit}; MiniLM's first "
                     f"encode of this catalog would cost more than the rest of training (docs/SCALING.md); "
                     f"set text_backend = \"minilm\" to use it anyway")


def text_encoder(config: TwoTowerConfig, corpus: Sequence[str] = ()) -> MiniLMEncoder | TfidfSvdEncoder:
    """The configured encoder (``text_backend`` "minilm" or "tfidf"; "none" / unresolved "auto"
    are ConfigErrors)."""
    return make_text_encoder(config.text_backend, dim=config.text_dim, corpus=corpus, seed=config.seed,
                             precision=config.text_precision, max_tokens=config.text_max_tokens)


def prepare_text(config: TwoTowerConfig, frame: pd.DataFrame, *, cache: str | Path | None = None) -> PreparedText:
    """The text vectors of ``frame``'s items (rows = item indices); zero-width without text."""
    texts = item_texts(frame)
    if config.text_backend == "none" or not any(texts):
        return PreparedText(None, np.zeros((len(frame), 0), np.float32),
                            {"backend": config.text_backend, "texts": len(frame), "encoded": 0, "cached": 0,
                             "cache": None})
    enc = text_encoder(config, texts)
    vectors, report = encode_cached(enc, texts, cache=cache)
    return PreparedText(enc if isinstance(enc, TfidfSvdEncoder) else None, vectors, report)


def prepare_resolved(config: TwoTowerConfig, frame: pd.DataFrame, *,
                     cache: str | Path | None = None) -> tuple[TwoTowerConfig, PreparedText]:
    """(config with the backend used, text vectors) for a fit on ``frame``'s items: an "auto"
    backend resolved by the catalog's size (``resolve_backend``; the reason is the report's
    ``backend_choice``), so the model's saved params name what was used."""
    backend, why = resolve_backend(config, len(frame))
    if backend != config.text_backend:
        config = config.model_copy(update={"text_backend": backend})
    prepared = prepare_text(config, frame, cache=cache)
    if why is not None:
        prepared.report["backend_choice"] = why
    return config, prepared
