"""Bundles written before winnow.bundle existed still load and serve the same slates.

tests/fixtures/bundle_v1/ holds a bundle trained by the code of commit cec5767 (``winnow train``
with the fixture's winnow.toml over ``generate_world(120, 150, 4000, seed=11)``): every source
kind (als, itemitem, sequence, trending, fresh, two_tower, content, segment_popular), the
served ranker (ranker/) and the segment model (segment/). ``expected_slates.json`` holds what
that code served from it at a fixed time; today's code must serve the same items, sources and
scores from the same files (the format is byte-compatible: schema_version 1).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from winnow import bundle as B
from winnow.core.config import load_config
from winnow.core.errors import BundleError
from winnow.data.open_store import open_store
from winnow.data.synthetic import generate_world

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "bundle_v1"
NOW = 1_720_000_000.0


def _version() -> str:
    return next(d.name for d in FIXTURE.iterdir() if d.is_dir() and B.VERSION_RE.match(d.name))


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("compat")
    shutil.copy(FIXTURE / "winnow.toml", home / "winnow.toml")
    cfg = load_config(home)
    world = generate_world(120, 150, 4000, seed=11)
    store = open_store(cfg.store_url())
    try:
        store.import_all(events=world.events, items=world.items, users=world.users)
    finally:
        store.close()
    version = _version()
    shutil.copytree(FIXTURE / version, B.bundles_dir(home) / version)
    B.activate(home, version)
    return home


def test_v1_bundle_verifies_and_loads_every_part(home: Path) -> None:
    bundle = B.load_bundle(B.bundles_dir(home) / _version())
    assert set(bundle.models) == {"popularity", "popularity_recent", "als", "itemitem", "sequence", "two_tower"}
    assert bundle.index is not None and len(bundle.index) == len(bundle.item_ids)
    ranker = B.load_ranker(bundle.path)
    assert ranker is not None and B.ranker_digests(bundle.files) is not None
    segment = B.load_segment(bundle.path)
    assert segment is not None and segment.n_items_ == len(bundle.item_ids)


def test_v1_bundle_serves_the_slates_it_served_before(home: Path) -> None:
    from winnow.serving.service import Service

    expected = json.loads((FIXTURE / "expected_slates.json").read_text())
    svc = Service(load_config(home))
    try:
        assert svc.runtime.version == _version()
        for user, want in expected.items():
            rt, _, slate = svc.recommend(user, k=10, surface="home", exclude=[], explain=False,
                                         categories=None, context={}, now=NOW)
            ids = rt.catalog.item_ids.to_list()
            got = [[ids[it.item], it.sources] for it in slate.items]
            assert got == [[w[0], w[2]] for w in want], user
            assert [float(it.score) for it in slate.items] == pytest.approx([w[1] for w in want], abs=1e-4)
    finally:
        svc.close()


def test_a_newer_schema_version_is_refused_naming_both(tmp_path: Path) -> None:
    version = _version()
    dst = tmp_path / version
    shutil.copytree(FIXTURE / version, dst)
    manifest = json.loads((dst / "manifest.json").read_text())
    manifest["schema_version"] = B.SCHEMA_VERSION + 1
    (dst / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match=f"schema_version {B.SCHEMA_VERSION + 1}.*reads {B.SCHEMA_VERSION}"):
        B.load_bundle(dst)


def test_v1_bundle_without_a_drift_profile_is_reported_as_such(home: Path) -> None:
    """A bundle written before drift profiles: the service's drift monitor says it has none
    (never "no drift"), and the report CLI refuses naming the bundle."""
    from winnow.evaluation.drift_report import drift_report
    from winnow.serving.service import Service

    assert B.load_profile(B.bundles_dir(home) / _version()) is None
    svc = Service(load_config(home))
    try:
        assert svc.drift is not None
        snap = svc.drift.refresh()
        assert snap["state"] == "no_profile" and snap["report"] is None
        assert _version() in snap["error"] and "no reference profile" in snap["error"]
        cfg, store = svc.config, svc.store
        with pytest.raises(BundleError, match=f"bundle {_version()} has no reference profile"):
            drift_report(cfg, store)
    finally:
        svc.close()
