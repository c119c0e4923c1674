"""Core: id maps, config loading and validation, error messages."""

from __future__ import annotations

import numpy as np
import pytest

from winnow.core.config import load_config
from winnow.core.errors import ConfigError, DataError, UnknownIdError
from winnow.core.ids import IdMap


def test_idmap_roundtrip_and_stability() -> None:
    m = IdMap("item", ["a", "b"])
    assert m.encode(["b", "a", "c"], add=True).tolist() == [1, 0, 2]
    assert m.decode([2, 0]) == ["c", "a"]
    assert m.index("b") == 1  # adding never renumbers
    assert m.encode([7], add=True).tolist() == [3]
    assert m.index(7) == 3 and m.index("7") == 3  # numbers are stringified


def test_idmap_unknown_and_missing() -> None:
    m = IdMap("user", ["u1"])
    with pytest.raises(UnknownIdError, match="unknown user id: 'zz'"):
        m.encode(["u1", "zz"])
    assert m.encode(["zz", "u1"], missing=-1).tolist() == [-1, 0]
    with pytest.raises(IndexError):
        m.decode([5])
    with pytest.raises(ValueError, match="duplicate"):
        IdMap("user", ["a", "a"])


def test_idmap_serialises_as_list() -> None:
    m = IdMap("item", ["x", "y", "z"])
    back = IdMap.from_list("item", m.to_list())
    np.testing.assert_array_equal(back.encode(["z", "x"]), [2, 0])


def test_idmap_copy_is_equal_and_independent() -> None:
    m = IdMap("item", ["x", "y", "z"])
    c = m.copy()
    assert c.kind == "item" and c.to_list() == m.to_list() and c.encode(["z", "x"]).tolist() == [2, 0]
    assert c.add("new") == 3 and "new" not in m and len(m) == 3  # adding to the copy leaves m alone
    assert m.add("other") == 3 and "other" not in c and c.index("new") == 3


def test_config_defaults_and_overrides(tmp_path) -> None:
    cfg = load_config(tmp_path, environ={})
    assert cfg.events.weights["purchase"] > cfg.events.weights["view"]
    assert cfg.store_url() == f"sqlite:///{tmp_path}/winnow.db"
    (tmp_path / "winnow.toml").write_text("[models.als]\nfactors = 16\n")
    cfg = load_config(tmp_path, environ={"WINNOW__MODELS__ALS__ITERATIONS": "3"})
    assert cfg.models.als.factors == 16 and cfg.models.als.iterations == 3


def test_config_rejects_typos_and_bad_values(tmp_path) -> None:
    (tmp_path / "winnow.toml").write_text("[models.als]\nfactorz = 16\n")
    with pytest.raises(ConfigError, match="factorz"):
        load_config(tmp_path, environ={})
    (tmp_path / "winnow.toml").write_text("[models.als]\nfactors = -1\n")
    with pytest.raises(ConfigError, match="models.als.factors"):
        load_config(tmp_path, environ={})
    (tmp_path / "winnow.toml").write_text("[models\n")
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_config(tmp_path, environ={})


def test_data_error_names_file_line_field_value() -> None:
    err = DataError("not an integer", source="ratings.csv", line=12, field="timestamp", value="x")
    assert str(err) == "ratings.csv, line 12, field 'timestamp': not an integer (value: 'x')"
