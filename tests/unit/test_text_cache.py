"""The item-text vector cache (winnow.models.text_cache): only new or changed texts are encoded,
the file is bounded by the catalog and compact, and a corrupt, foreign or unwritable cache never
stops an encode nor gives vectors of another model."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import numpy as np
import pytest

from winnow.models import text_cache
from winnow.models.text_cache import cache_file, encode_cached, text_digests


class CountingEncoder:
    """A deterministic fake: vector = (len(text), first char code, marker); counts what it encodes."""

    backend = "minilm"
    dim = 3

    def __init__(self, cache_id: str | None = "fake-v1", marker: float = 1.0) -> None:
        self.cache_id, self.marker = cache_id, marker
        self.seen: list[str] = []

    def encode(self, texts: list[str]) -> np.ndarray:
        self.seen += list(texts)
        return np.array([[len(t), ord(t[0]), self.marker] for t in texts], np.float32)


def _fresh(texts: list[str], marker: float = 1.0) -> np.ndarray:
    return encode_cached(CountingEncoder(None, marker), texts)[0]


def test_only_new_texts_are_encoded_and_the_report_counts_them(tmp_path: Path) -> None:
    enc = CountingEncoder()
    v, rep = encode_cached(enc, ["ab", "", "abc", "ab"], cache=tmp_path)
    assert enc.seen == ["ab", "abc"] or enc.seen == ["abc", "ab"]  # duplicates and empty texts: not encoded
    assert (v[1] == 0).all() and v[0, 0] == 2 and v[3, 0] == 2 and v[2, 0] == 3
    assert rep | {"cache": None} == {"backend": "minilm", "texts": 4, "empty": 1, "encoded": 2, "cached": 0,
                                     "distinct": 2, "cache": None, "cache_note": "no cache file yet"}
    enc2 = CountingEncoder()
    v2, rep2 = encode_cached(enc2, ["abc", "abcd", "ab"], cache=tmp_path)
    assert enc2.seen == ["abcd"]
    assert (rep2["encoded"], rep2["cached"], rep2["cache"]) == (1, 2, str(cache_file(tmp_path, "minilm")))
    np.testing.assert_array_equal(v2, _fresh(["abc", "abcd", "ab"]))  # cached rows = what encoding gives


def test_the_cache_holds_the_last_catalog_only_with_16_byte_keys(tmp_path: Path) -> None:
    texts = [f"item {i}" for i in range(500)]
    encode_cached(CountingEncoder(), texts, cache=tmp_path)
    encode_cached(CountingEncoder(), texts[:100] + ["new"], cache=tmp_path)  # 400 texts left the catalog
    with np.load(cache_file(tmp_path, "minilm"), allow_pickle=False) as z:
        assert z["keys"].dtype == np.uint8 and z["keys"].shape == (101, 16)
        assert z["vectors"].shape == (101, 3)
        assert json.loads(str(z["meta"]))["encoder"] == "fake-v1"
    enc = CountingEncoder()
    encode_cached(enc, texts[:100] + ["new"], cache=tmp_path)
    assert enc.seen == []


def test_digests_ending_in_zero_bytes_are_found() -> None:
    # S16 keys drop trailing NULs when read out one by one: digests ending in 0x00 must still match
    zeros = [t for t in (f"t{i}" for i in range(5000)) if hashlib.blake2b(t.encode(), digest_size=16).digest()[-1] == 0]
    assert len(zeros) >= 3
    d = text_digests(zeros)
    assert (d[:, -1] == 0).all()


def test_zero_suffix_digests_round_trip_through_the_cache(tmp_path: Path) -> None:
    zeros = [t for t in (f"t{i}" for i in range(5000)) if hashlib.blake2b(t.encode(), digest_size=16).digest()[-1] == 0]
    texts = zeros + ["plain", "other"]
    encode_cached(CountingEncoder(), texts, cache=tmp_path)
    enc = CountingEncoder()
    v, rep = encode_cached(enc, texts, cache=tmp_path)
    assert enc.seen == [] and rep["cached"] == len(texts)
    np.testing.assert_array_equal(v, _fresh(texts))


@pytest.mark.parametrize("damage", ["truncate", "garbage", "flip"])
def test_a_corrupt_cache_is_ignored_with_a_warning_and_rebuilt(tmp_path: Path, damage: str,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    texts = [f"item {i}" for i in range(200)]
    encode_cached(CountingEncoder(), texts, cache=tmp_path)
    path = cache_file(tmp_path, "minilm")
    raw = bytearray(path.read_bytes())
    if damage == "truncate":
        path.write_bytes(raw[: len(raw) // 2])
    elif damage == "garbage":
        path.write_bytes(b"not a zip at all")
    else:  # one byte of the vectors' data flipped: the zip member's CRC no longer matches
        with np.load(path) as z:
            row = z["vectors"][0].tobytes()
        i = bytes(raw).index(row)
        raw[i] ^= 0xFF
        path.write_bytes(bytes(raw))
    enc = CountingEncoder()
    with caplog.at_level(logging.WARNING, logger="winnow.models.text_cache"):
        v, rep = encode_cached(enc, texts, cache=tmp_path)
    assert "ignored" in caplog.text and rep["cached"] == 0 and rep["encoded"] == 200
    np.testing.assert_array_equal(v, _fresh(texts))
    enc2 = CountingEncoder()
    encode_cached(enc2, texts, cache=tmp_path)  # rebuilt by the previous call
    assert enc2.seen == []


def test_a_cache_of_another_model_or_dim_is_not_reused(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    texts = ["a", "bb", "ccc"]
    encode_cached(CountingEncoder("fake-v1", marker=1.0), texts, cache=tmp_path)
    other = CountingEncoder("fake-v1 int8", marker=2.0)
    with caplog.at_level(logging.WARNING, logger="winnow.models.text_cache"):
        v, rep = encode_cached(other, texts, cache=tmp_path)
    assert "another encoder" in rep["cache_note"] and "ignored" in caplog.text
    assert len(other.seen) == 3 and (v[:, 2] == 2.0).all()  # the other model's vectors, not the cached ones
    wide = CountingEncoder("fake-v1 int8")
    wide.dim = 4
    wide.encode = lambda ts: np.ones((len(ts), 4), np.float32)  # type: ignore[method-assign]
    _, rep = encode_cached(wide, texts, cache=tmp_path)
    assert rep["cached"] == 0 and "expected float32 (3, 4)" in rep["cache_note"]


def test_an_encoder_without_cache_id_is_never_cached(tmp_path: Path) -> None:
    enc = CountingEncoder(cache_id=None)
    _, rep = encode_cached(enc, ["a", "b"], cache=tmp_path)
    assert rep["cache"] is None and "fitted on each run" in rep["cache_note"]
    assert not list(tmp_path.iterdir())


def test_a_failed_write_keeps_the_old_cache_and_the_vectors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    encode_cached(CountingEncoder(), ["a", "b"], cache=tmp_path)
    before = cache_file(tmp_path, "minilm").read_bytes()

    def full_disk(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(text_cache.np, "savez", full_disk)
    v, rep = encode_cached(CountingEncoder(), ["a", "b", "c"], cache=tmp_path)
    assert "No space left" in rep["cache_note"] and rep["encoded"] == 1
    np.testing.assert_array_equal(v, _fresh(["a", "b", "c"]))
    assert cache_file(tmp_path, "minilm").read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["minilm.npz"]  # no temp file left behind


def test_a_wrong_shaped_encode_is_an_error_not_a_cache_entry(tmp_path: Path) -> None:
    enc = CountingEncoder()
    enc.encode = lambda ts: np.ones((len(ts), 2), np.float32)  # type: ignore[method-assign]
    with pytest.raises(ValueError, match="expected"):
        encode_cached(enc, ["a"], cache=tmp_path)
    assert not cache_file(tmp_path, "minilm").exists()
