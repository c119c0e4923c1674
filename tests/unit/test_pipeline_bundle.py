"""Bundle format: atomic write, checksum/schema verification, activation and rollback."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from winnow.core.errors import BundleError
from winnow import bundle as B


def fill(d: Path) -> None:
    n = 3
    (d / "user_ids.json").write_text(json.dumps(["u0", "u1"]))
    (d / "item_ids.json").write_text(json.dumps([f"i{i}" for i in range(n)]))
    (d / "categories.json").write_text(json.dumps(["a"]))
    np.savez(d / "items.npz", category=np.zeros(n, np.int32), available=np.ones(n, bool),
             sponsored=np.zeros(n, bool), created_at=np.full(n, -1, np.int64),
             popularity=np.arange(n, dtype=np.float32), trending=np.ones(n, np.float32))


def make(home: Path, version: str) -> B.BundleInfo:
    return B.write_bundle(home, version, manifest={"models": [], "metrics": {"ndcg@20": 0.1}}, fill=fill)


V1, V2, V3 = "20260101T000000Z-aaaaaa", "20260102T000000Z-bbbbbb", "20260103T000000Z-cccccc"


def test_write_then_load_roundtrip_with_checksums(tmp_path):
    info = make(tmp_path, V1)
    m = json.loads((info.path / "manifest.json").read_text())
    assert m["schema_version"] == B.SCHEMA_VERSION and m["version"] == V1
    assert set(m["files"]) == {"user_ids.json", "item_ids.json", "categories.json", "items.npz"}
    b = B.load_bundle(info.path)
    assert b.item_ids.ids == ["i0", "i1", "i2"] and b.items["popularity"].tolist() == [0, 1, 2]
    assert not list(B.bundles_dir(tmp_path).glob(".tmp-*"))


def test_ids_files_already_loaded_are_copied_not_decoded(tmp_path, monkeypatch):
    """load_bundle(reuse=): an ids file whose verified checksum is among the maps given is not
    read again; the map is a copy (equal, independent); another file is decoded as usual."""
    from winnow.bundle import read

    a, b = B.load_bundle(make(tmp_path, V1).path), make(tmp_path, V2)  # same ids files, same checksums
    reads: list[str] = []
    real = read._read_json
    monkeypatch.setattr(read, "_read_json", lambda p: (reads.append(Path(p).name), real(p))[1])
    again = B.load_bundle(b.path, reuse=a.id_maps)
    assert "item_ids.json" not in reads and "user_ids.json" not in reads and "categories.json" in reads
    assert again.item_ids.ids == a.item_ids.ids and again.user_ids.ids == a.user_ids.ids
    assert again.item_ids is not a.item_ids
    again.item_ids.add("new")
    assert "new" not in a.item_ids  # a copy: the cached map is never changed through it
    assert set(a.id_maps) == {f"user:{a.files['user_ids.json']}", f"item:{a.files['item_ids.json']}"}

    def other(d: Path) -> None:  # another catalog: a different item_ids.json
        fill(d)
        (d / "item_ids.json").write_text(json.dumps(["x", "y", "z"]))

    c = B.write_bundle(tmp_path, V3, manifest={"models": []}, fill=other)
    reads.clear()
    decoded = B.load_bundle(c.path, reuse=a.id_maps)
    assert "item_ids.json" in reads and "user_ids.json" not in reads
    assert decoded.item_ids.ids == ["x", "y", "z"]


def test_corrupt_file_and_wrong_schema_are_refused(tmp_path):
    info = make(tmp_path, V1)
    with open(info.path / "items.npz", "r+b") as f:
        f.seek(50)
        f.write(b"XX")
    with pytest.raises(BundleError, match="checksum mismatch for 'items.npz'"):
        B.load_bundle(info.path)
    info2 = make(tmp_path, V2)
    m = json.loads((info2.path / "manifest.json").read_text())
    m["schema_version"] = 999
    (info2.path / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(BundleError, match="schema_version 999"):
        B.load_bundle(info2.path)
    (info2.path / "user_ids.json").unlink()
    with pytest.raises(BundleError):
        B.verify_bundle(info2.path)


def test_failed_fill_leaves_nothing_visible(tmp_path):
    def boom(d: Path) -> None:
        (d / "half.json").write_text("{")
        raise RuntimeError("disk full")
    with pytest.raises(RuntimeError):
        B.write_bundle(tmp_path, V1, manifest={}, fill=boom)
    assert B.list_bundles(tmp_path) == [] and not (B.bundles_dir(tmp_path) / V1).exists()
    assert not list(B.bundles_dir(tmp_path).glob(".tmp-*"))


def test_activate_and_rollback_follow_history(tmp_path):
    for v in (V1, V2, V3):
        make(tmp_path, v)
        B.activate(tmp_path, v)
    assert B.active_version(tmp_path) == V3
    assert B.rollback(tmp_path).version == V2 and B.active_version(tmp_path) == V2
    assert B.rollback(tmp_path).version == V1
    with pytest.raises(BundleError, match="no earlier"):
        B.rollback(tmp_path)
    assert [b.version for b in B.list_bundles(tmp_path)] == [V1, V2, V3]


def test_activate_refuses_corrupt_bundle_and_keeps_pointer(tmp_path):
    make(tmp_path, V1)
    B.activate(tmp_path, V1)
    info = make(tmp_path, V2)
    (info.path / "categories.json").write_text('["tampered"]')
    with pytest.raises(BundleError):
        B.activate(tmp_path, V2)
    assert B.active_version(tmp_path) == V1


@pytest.mark.parametrize("bad", ["../etc", "20260101T000000Z-aaaaaa/../x", "", "latest", "20260101T000000Z-AAAAAA"])
def test_version_names_are_strict(bad):
    with pytest.raises(BundleError):
        B.check_version(bad)
