"""`winnow bundles list | activate VERSION | rollback`: the admin API's bundle routes on the command line.

Same semantics and errors as ``/v1/admin/bundles`` (serving/routes_admin.py), through the same
owner of the format (winnow.bundle): a version that is malformed or unknown is refused before
anything is read; ``activate`` and ``rollback`` verify every checksum and build the complete
serving runtime (models, index, pipeline wiring against this configuration) BEFORE the ACTIVE
pointer moves, so a bundle the server would refuse is refused here and nothing changes.
Running servers follow ACTIVE within ``[serving] bundle_poll_s``.
"""

from __future__ import annotations

import typer

from winnow.cli.app import app, closing, config, store

bundles_app = typer.Typer(help="Model bundles: list, activate, roll back (the admin API's routes).",
                          no_args_is_help=True)
app.add_typer(bundles_app, name="bundles")


def check_serves(version: str) -> None:
    """Verify ``version`` and build the runtime a server would build from it (BundleError /
    ConfigError / UnknownIdError when it cannot serve); nothing is written."""
    from winnow import bundle as bundles
    from winnow.serving.runtime import Runtime

    cfg = config()
    path = bundles.bundle_path(cfg.home, version)
    with closing(store()) as st:
        Runtime.from_bundle(cfg, bundles.load_bundle(path), st)


@bundles_app.command("list")
def list_cmd() -> None:
    """Every complete bundle, oldest first: version, created, ACTIVE marker, offline metrics."""
    from winnow import bundle as bundles

    home = config().home
    active = bundles.active_version(home)
    found = bundles.list_bundles(home)
    if not found:
        typer.echo(f"no bundles under {bundles.bundles_dir(home)} (write one with `winnow train`)")
        return
    typer.echo(f"{'version':<26} {'active':<7} {'events':>10}  ndcg@20 (als)")
    for b in found:
        events = (b.manifest.get("data") or {}).get("events", "-")
        ndcg = ((b.manifest.get("metrics") or {}).get("als") or {}).get("ndcg@20")
        typer.echo(f"{b.version:<26} {'*' if b.version == active else '':<7} {events:>10}  "
                   f"{'-' if ndcg is None else f'{ndcg:.4f}'}")


def _refuse_if_running(what: str) -> None:
    """RolloutError (exit 2 with the reason) while a rollout runs (winnow.rollout.control)."""
    from winnow.rollout.control import refuse_if_running

    with closing(store()) as s:
        refuse_if_running(s, what)


@bundles_app.command("activate")
def activate_cmd(version: str = typer.Argument(..., help="a version shown by `winnow bundles list`"),
                 force: bool = typer.Option(False, "--force",
                                            help="activate even a bundle the autopilot's gate failed")) -> None:
    """Verify, build and make VERSION active (servers follow within bundle_poll_s). A bundle
    labelled ``gate: failed`` by `winnow autopilot` is refused unless --force."""
    from winnow import bundle as bundles

    home = config().home
    _refuse_if_running(f"activate {version}")
    bundles.refuse_gate_failed(home, version, force=force, how="--force")
    previous = bundles.active_version(home)
    check_serves(version)
    bundles.activate(home, version, verify=False)  # check_serves verified every checksum
    typer.echo(f"activated {version} (previous: {previous or '-'})")


@bundles_app.command("rollback")
def rollback_cmd() -> None:
    """Activate the version that was active before the current one."""
    from winnow import bundle as bundles

    home = config().home
    _refuse_if_running("rollback")
    current = bundles.active_version(home)
    target = bundles.previous_version(home)  # BundleError when there is none
    check_serves(target)
    bundles.rollback(home, verify=False)
    typer.echo(f"rolled back to {target} (previous: {current or '-'})")
