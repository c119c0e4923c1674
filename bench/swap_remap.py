"""Cost of a bundle swap's ranker feature state: replaying the event log vs remapping the serving
state (issue 15, serving/learned_ranker.py ``FeatureFeed.remapped``). Time, CPU and memory.

Two measurements, each run in its own fresh process (so one run's heap never shows in another):

- ``state``: the feature state alone, at a given number of events (the first N of a synthetic
  store by time). The challenger is the home's trained bundle (its id maps, feature catalog and
  spec); the champion is the same bundle as it would have been before its last ``--new-share``
  of users and items arrived: id maps and catalog cut to their first (1 - share) rows, its state
  a replay of the N events (whose events of the cut ids it records as skipped). Measured: the
  challenger's state by a replay of the N events (held in memory: the store read a real swap
  adds is measured separately, ``store_read_all_s``) vs by ``remapped`` from the champion's feed.
  The champion's state is built only for the remap run (a replay does not read it): at 10M
  events one state is several GB, and the machine holds 24 GB for everyone.
  With ``--changed`` / ``--moved``, extra remap rows whose challenger also changed known rows:
  catalog rows (a price) of that share of the champion's items, peer codes of that share of
  its users (``_changed_catalog``); the remap then re-folds the users of the changed items and
  rebuilds the peer columns (features/remap.py). A replay's work does not depend on them.
- ``runtime``: the whole ``Runtime.from_bundle`` a swap runs, on a home's real store (every
  event) and trained bundle. The challenger is a byte copy of the ACTIVE bundle with its
  ranker/ranker.json re-serialised (other digest, same content: no state take-over; the same
  id maps, so a remap with no new ids). Measured: the build with a replay vs with a remap, and
  the feature-state step inside it.

Figures per run: wall and process CPU seconds, peak RSS above the RSS at the start (sampled
every 0.1 s plus start and end: training.progress.StageClock) and RSS retained with both states
(or runtimes) alive: for a remap, the challenger's state beside the champion's (what holding
both bundles costs on top of the champion); for a replay, the new state alone. Both modes run under ``swap.background_priority()`` as the service's builds
do (cyclic collector paused). Homes are copies (never modify a shared one).

    python bench/swap_remap.py --state-home H10M --events 1000000 10000000 --changed 0.01 0.1 --moved 0.2 \\
        --runtime-home H2M H10M --json bench/results/swap_remap.json --md bench/results/swap_remap.md
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from winnow import bundle as bundles
from winnow.bundle import check_version, load_ranker, new_version, sha256_file
from winnow.bundle.layout import ITEM_IDS, USER_IDS
from winnow.core.config import load_config
from winnow.core.ids import IdMap
from winnow.data.open_store import open_store
from winnow.data.store import EventLog
from winnow.features import FeatureCatalog, OnlineFeatureState
from winnow.features.remap import changed_items
from winnow.serving import learned_ranker
from winnow.serving.learned_ranker import FeatureFeed
from winnow.serving.swap import background_priority
from winnow.training.progress import StageClock, rss_bytes

MIB = 2**20


def _measure(fn: Any) -> tuple[Any, dict[str, Any]]:
    """(fn(), {"wall_s", "cpu_s", "peak_rss_delta_mib", "retained_rss_mib"}) with ``fn``'s
    result still alive when the retained RSS is read."""
    clock = StageClock(["swap"], events=1)
    start = rss_bytes() or 0
    with clock.stage("swap"), background_priority():  # as the service builds (collector paused)
        out = fn()
    rep = clock.report()["swap"]
    return out, {"wall_s": rep["wall_s"], "cpu_s": rep["cpu_s"],
                 "peak_rss_delta_mib": round(rep["peak_rss_mib"] - start / MIB, 1),
                 "retained_rss_mib": round(((rss_bytes() or 0) - start) / MIB, 1)}


def _first(log: EventLog, n: int) -> EventLog:
    if n >= len(log):
        return log
    keep = np.argsort(log.timestamp, kind="stable")[:n]
    keep.sort()
    return EventLog(log.user[keep], log.item[keep], log.event_type[keep], log.value[keep], log.timestamp[keep],
                    log.user_ids, log.item_ids, log.event_types)


def _changed_catalog(catalog: FeatureCatalog, n_items: int, n_users: int, changed: float,
                     moved: float) -> FeatureCatalog:
    """``catalog`` after a catalog update between the two trainings: a ``changed`` share of the
    first ``n_items`` items (spread evenly) get another price (every numeric attribute x 1.1 + 1;
    the creation time a day earlier when there is none), a ``moved`` share of the first
    ``n_users`` users another peer code in each group (as when the bins of a retrain move)."""
    out = dataclasses.replace(catalog, item_numeric=catalog.item_numeric.copy(),
                              item_created=catalog.item_created.copy(), user_groups=catalog.user_groups.copy())
    rows = np.unique(np.linspace(0, n_items - 1, int(n_items * changed)).astype(np.int64)) if changed else []
    if catalog.item_numeric.shape[1]:
        out.item_numeric[rows] = out.item_numeric[rows] * 1.1 + 1
    else:
        out.item_created[rows] -= 86_400
    users = np.unique(np.linspace(0, n_users - 1, int(n_users * moved)).astype(np.int64)) if moved else []
    g = out.user_groups
    if len(users) and g.ndim == 2 and g.shape[1]:
        width = np.maximum(g.max(axis=0) + 1, 1)
        g[users] = np.where(g[users] >= 0, (g[users] + 1) % width, g[users])
    return out


def run_state(home: Path, events: int, mode: str, share: float, changed: float = 0.0,
              moved: float = 0.0) -> dict[str, Any]:
    cfg = load_config(home)
    path = bundles.bundles_dir(home) / str(bundles.active_version(home))
    loaded = load_ranker(path)
    assert loaded is not None, f"{path} has no ranker"
    model, catalog = loaded
    users = json.loads((path / USER_IDS).read_text())
    items = json.loads((path / ITEM_IDS).read_text())
    store = open_store(cfg.store_url())
    t0 = time.perf_counter()
    full = store.read_events()
    read_s = time.perf_counter() - t0
    log = _first(full, events)
    del full
    nu, ni = int(len(users) * (1 - share)), int(len(items) * (1 - share))
    old_users, old_items = IdMap.from_list("user", users[:nu]), IdMap.from_list("item", items[:ni])
    new_users, new_items = IdMap.from_list("user", users), IdMap.from_list("item", items)
    if changed or moved:
        catalog, old_catalog = _changed_catalog(catalog, ni, nu, changed, moved), catalog
    else:
        old_catalog = catalog
    t0 = time.perf_counter()
    champion = FeatureFeed(OnlineFeatureState(old_catalog.head(nu, ni), model.spec), old_users, old_items, cfg)
    if mode == "remap":  # a replay reads nothing of the serving state: not built (memory)
        with background_priority():
            champion.replay(log)
    setup_s = time.perf_counter() - t0
    skipped = len(champion.outside)
    if mode == "replay":
        def swap() -> FeatureFeed:
            feed = FeatureFeed(OnlineFeatureState(catalog, model.spec), new_users, new_items, cfg)
            feed.replay(log)
            return feed
    else:
        def swap() -> FeatureFeed:
            got = champion.remapped(new_users, new_items, catalog, model.spec, key=None)
            assert isinstance(got, FeatureFeed), got
            return got
    feed, fig = _measure(swap)
    store.close()
    return {"kind": "state", "home": str(home), "mode": mode, "events": len(log), "users": len(users),
            "items": len(items), "new_share": share, "new_users": len(users) - nu, "new_items": len(items) - ni,
            "changed_item_share": changed, "moved_user_share": moved,
            "changed_items": len(changed_items(old_catalog.head(nu, ni), catalog)),
            "skipped_events_of_new_ids": skipped, "left_outside": len(feed.outside),
            "store_read_all_s": round(read_s, 2), "champion_replay_s": round(setup_s, 2), **fig}


def _challenger(home: Path) -> tuple[str, str]:
    """(ACTIVE version, a copy of it with ranker/ranker.json re-serialised), made once per home."""
    active = str(bundles.active_version(home))
    root = bundles.bundles_dir(home)
    for d in root.iterdir():
        if d.is_dir() and d.name != active and (d / ".remap-bench").is_file():
            return active, d.name
    dst = check_version(new_version())
    shutil.copytree(root / active, root / dst)
    spec = root / dst / "ranker" / "ranker.json"
    spec.write_text(json.dumps(json.loads(spec.read_text()), indent=3))
    mpath = root / dst / "manifest.json"
    manifest = json.loads(mpath.read_text())
    manifest["version"], manifest["files"]["ranker/ranker.json"] = dst, sha256_file(spec)
    mpath.write_text(json.dumps(manifest))
    (root / dst / ".remap-bench").write_text("challenger of bench/swap_remap.py\n")
    return active, dst


def run_runtime(home: Path, mode: str) -> dict[str, Any]:
    from winnow.serving.runtime import Runtime

    cfg = load_config(home)
    champion, challenger = _challenger(home)
    store = open_store(cfg.store_url())
    events = len(store.read_events().timestamp)
    t0 = time.perf_counter()
    serving = None
    if mode == "remap":  # a replay reads nothing of the serving runtime: not built (memory)
        with background_priority():
            serving = Runtime.from_bundle(cfg, bundles.load_bundle(bundles.bundles_dir(home) / champion), store)
    setup_s = time.perf_counter() - t0
    state_s: list[float] = []
    original = learned_ranker.load_served_ranker

    def timed(*args: Any, **kwargs: Any) -> Any:
        t = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            state_s.append(time.perf_counter() - t)

    learned_ranker.load_served_ranker = timed  # type: ignore[assignment]
    feed = serving.feature_feed if serving is not None else None
    new, fig = _measure(lambda: Runtime.from_bundle(
        cfg, bundles.load_bundle(bundles.bundles_dir(home) / challenger), store, serving_feed=feed))
    assert new.feature_feed is not None and not new.feature_feed.shared
    assert feed is None or new.feature_feed.state is not feed.state
    store.close()
    return {"kind": "runtime", "home": str(home), "mode": mode, "events": events,
            "users": len(new.user_ids), "items": len(new.feature_feed.item_ids),
            "champion_build_s": round(setup_s, 2), "feature_state_s": round(state_s[0], 3), **fig}


def _child(args: list[str]) -> dict[str, Any]:
    out = subprocess.run([sys.executable, __file__, "--one", *args], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _table(rows: list[dict[str, Any]]) -> str:
    head = ("| what | events | mode | wall s | CPU s | peak RSS +MiB | retained +MiB | notes |\n"
            "|---|---|---|---|---|---|---|---|\n")
    lines = []
    for r in rows:
        if r["kind"] == "runtime":
            note = f"feature-state step {r['feature_state_s']} s; {r['users']:,} users, {r['items']:,} items"
        elif r["mode"] == "remap":
            note = (f"+{r['new_users']:,} users, +{r['new_items']:,} items; {r['skipped_events_of_new_ids']:,} "
                    f"events of the new ids folded in")
            if r.get("changed_items") or r.get("moved_user_share"):
                note += (f"; catalog rows changed for {r['changed_item_share']:.0%} of items "
                         f"({r['changed_items']:,}), peer codes moved for {r['moved_user_share']:.0%} of users")
        else:
            note = f"all {r['events']:,} events folded; {r['users']:,} users, {r['items']:,} items"
        lines.append(f"| {r['kind']} ({Path(r['home']).name}) | {r['events']:,} | {r['mode']} | {r['wall_s']} | "
                     f"{r['cpu_s']} | {r['peak_rss_delta_mib']} | {r['retained_rss_mib']} | {note} |")
    return head + "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--state-home", type=Path, help="a (copied) home with a trained bundle: state runs")
    ap.add_argument("--events", type=int, nargs="*", default=[1_000_000, 10_000_000])
    ap.add_argument("--new-share", type=float, default=0.02, help="share of users/items the challenger adds")
    ap.add_argument("--changed", type=float, nargs="*", default=[],
                    help="extra remap rows: catalog rows changed for this share of the known items")
    ap.add_argument("--moved", type=float, nargs="*", default=[],
                    help="extra remap rows: peer codes moved for this share of the known users")
    ap.add_argument("--runtime-home", type=Path, nargs="*", default=[], help="(copied) homes: runtime runs")
    ap.add_argument("--table-from", type=Path, help="print the summary table of an earlier --json")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--md", type=Path)
    ap.add_argument("--one", nargs="+", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.table_from:
        print(_table(json.loads(a.table_from.read_text())["rows"]))
        return
    if a.one:
        kind, home, mode, *rest = a.one
        row = (run_state(Path(home), int(rest[0]), mode, *map(float, rest[1:])) if kind == "state"
               else run_runtime(Path(home), mode))
        print(json.dumps(row))
        return
    rows = []
    if a.state_home:
        for n in a.events:
            runs = [("replay", 0.0, 0.0), ("remap", 0.0, 0.0), *(("remap", c, 0.0) for c in a.changed),
                    *(("remap", 0.0, m) for m in a.moved)]
            for mode, changed, moved in runs:
                rows.append(_child(["state", str(a.state_home), mode, str(n), str(a.new_share), str(changed),
                                    str(moved)]))
                print(json.dumps(rows[-1]), flush=True)
    for home in a.runtime_home:
        for mode in ("replay", "remap"):
            rows.append(_child(["runtime", str(home), mode]))
            print(json.dumps(rows[-1]), flush=True)
    if a.json:
        a.json.write_text(json.dumps({"bench": "swap_remap", "rows": rows}, indent=2) + "\n")
    if a.md:
        a.md.write_text(_table(rows))
    print(_table(rows))


if __name__ == "__main__":
    main()
