"""``winnow serve``: run the app on uvicorn (uvloop + httptools).

One worker by default. With ``[serving] workers > 1`` that many uvicorn processes serve one
port behind a dispatcher that deals connections out evenly (``serving/workers.py``); they share
the store (the source of truth): each validates its cached user state
against the store on every request and follows the ACTIVE bundle pointer, so an event or an
activation received by one worker is seen by all (activation within ``bundle_poll_s``). Worker
processes rebuild the config from ``$WINNOW_HOME`` (winnow.toml + environment), so settings
passed only in-process do not reach them.

With ``[drift] monitor = "process"`` the server also runs the home's live drift monitor as a
supervised child that answers no requests (serving/drift_supervisor.py); the workers only read
its result. A server started another way (``uvicorn --factory ...app_from_env``) has none:
run ``winnow drift monitor`` beside it.
"""

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
    host = host or config.serving.host
    port = port or config.serving.port
    monitor = None
    if config.drift.monitor == "process":
        from winnow.serving.drift_supervisor import MonitorSupervisor

        monitor = MonitorSupervisor(config.home, nice=config.drift.monitor_nice, idle=config.drift.monitor_idle)
        monitor.start()
    try:
        if config.serving.workers > 1:
            from winnow.serving.workers import serve_workers

            os.environ["WINNOW_HOME"] = str(config.home)
            serve_workers(host, port, config.serving.workers, replace_timeout_s=config.serving.replace_timeout_s,
                          retire_s=config.serving.retire_s)
        else:
            uvicorn.run(create_app(config), host=host, port=port, loop="uvloop", http="httptools",
                        log_level="warning", access_log=False)
    finally:
        if monitor is not None:
            monitor.stop()
