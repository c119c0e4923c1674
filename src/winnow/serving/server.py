"""``winnow serve``: run the app on uvicorn (uvloop + httptools, one worker: online state is
in-process, so one process owns it)."""

from __future__ import annotations

import os

from fastapi import FastAPI

from winnow.core.config import WinnowConfig, load_config
from winnow.serving.app import create_app


def app_from_env() -> FastAPI:
    """App factory for ``uvicorn --factory winnow.serving.server:app_from_env`` ($WINNOW_HOME)."""
    return create_app(load_config(os.environ.get("WINNOW_HOME")))


def serve(config: WinnowConfig, host: str | None = None, port: int | None = None) -> None:
    """Serve until interrupted (host/port default to the [serving] config)."""
    import uvicorn

    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    app = create_app(config)
    uvicorn.run(app, host=host or config.serving.host, port=port or config.serving.port,
                loop="uvloop", http="httptools", log_level="warning", access_log=False)
