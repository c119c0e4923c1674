"""Validation of events / items / users frames (winnow.data.validate)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from winnow.core.config import EventsConfig
from winnow.core.errors import DataError
from winnow.data.schema import EVENT_COLUMNS, MAX_ID_LENGTH
from winnow.data.validate import find_problems, normalize_events, normalize_items, normalize_users


def _events(rows: int = 3, **over: list) -> pd.DataFrame:
    """3 distinct rows, repeated with the last one to ``rows`` (small and vectorised paths)."""
    base = {"user_id": ["u1", "u2", "u3"], "item_id": ["a", "b", "c"],
            "event_type": ["click", "view", "purchase"], "value": [np.nan, 1.5, 2.0],
            "timestamp": [10, 20, 30]}
    base.update(over)
    return pd.DataFrame({k: list(v) + [v[-1]] * (rows - 3) for k, v in base.items()})


SIZES = pytest.mark.parametrize("rows", [3, 600])


@SIZES
def test_normalize_gives_canonical_columns_and_dtypes(rows: int) -> None:
    out = normalize_events(_events(rows, user_id=[1, 2, 3], timestamp=["10", "2020-01-01T00:00:00Z", 30.0]))
    assert len(out) == rows
    assert list(out.columns) == list(EVENT_COLUMNS)
    assert out["user_id"].tolist()[:3] == ["1", "2", "3"]
    assert out["timestamp"].dtype == np.int64
    assert out["timestamp"].tolist()[:3] == [10, 1577836800, 30]
    assert np.isnan(out["value"].iloc[0]) and out["value"].iloc[1] == 1.5
    assert out["event_id"].isna().all() and out["context"].isna().all()


def test_missing_event_type_column_gets_default() -> None:
    frame = _events().drop(columns=["event_type"])
    assert normalize_events(frame)["event_type"].unique().tolist() == ["interaction"]
    assert normalize_events(frame, default_event_type="view")["event_type"].unique().tolist() == ["view"]


def test_missing_required_column_names_it() -> None:
    with pytest.raises(DataError) as err:
        normalize_events(_events().drop(columns=["timestamp"]), source="f.csv")
    assert err.value.field == "timestamp" and err.value.source == "f.csv"


@pytest.mark.parametrize(("column", "bad", "reason"), [
    ("user_id", "", "missing or empty id"),
    ("item_id", None, "missing or empty id"),
    ("item_id", "x" * (MAX_ID_LENGTH + 1), "longer than"),
    ("timestamp", "yesterday", "ISO-8601"),
    ("timestamp", 1.5, "integer"),
    ("value", "abc", "finite"),
    ("value", np.inf, "finite"),
    ("event_type", "", "missing or empty id"),
])
@SIZES
def test_bad_cell_reports_line_field_value(column: str, bad: object, reason: str, rows: int) -> None:
    frame = _events(rows)
    frame[column] = frame[column].astype(object)
    frame.loc[1, column] = bad
    with pytest.raises(DataError) as err:
        normalize_events(frame, source="events.csv", line_offset=2)
    assert err.value.line == 3 and err.value.field == column
    assert reason in err.value.reason
    assert "events.csv" in str(err.value) and "line 3" in str(err.value)


def test_context_must_be_json_object() -> None:
    ok = normalize_events(_events(context=[None, '{"request_id": "r"}', {"device": "ios"}]))
    assert ok["context"].iloc[2] == '{"device":"ios"}'
    with pytest.raises(DataError) as err:
        normalize_events(_events(context=[None, "[1, 2]", None]))
    assert err.value.field == "context" and err.value.line == 1
    with pytest.raises(DataError):
        normalize_events(_events(context=["{not json", None, None]))


@SIZES
def test_find_problems_lists_all_rows_in_order(rows: int) -> None:
    frame = _events(rows, user_id=["", "u2", "u3"], value=[1.0, "x", 2.0], timestamp=[1, "bad", 3])
    problems = find_problems(frame, line_offset=0)
    assert [(p.line, p.field) for p in problems] == [(0, "user_id"), (1, "value"), (1, "timestamp")]
    assert len(find_problems(frame, limit=2)) == 2
    assert find_problems(_events()) == []
    with pytest.raises(DataError) as err:
        normalize_events(frame)
    assert err.value.line == 0  # the raising wrapper reports the first one


def test_unknown_event_type_checked_only_without_default_weight() -> None:
    strict = EventsConfig(weights={"click": 1.0, "view": 0.5}, default_weight=None)
    problems = find_problems(_events(), events_config=strict)
    assert [(p.line, p.value) for p in problems] == [(2, "purchase")]
    lenient = EventsConfig(weights={"click": 1.0}, default_weight=1.0)
    assert find_problems(_events(), events_config=lenient) == []


def test_items_split_categories_and_collect_attributes() -> None:
    out = normalize_items(pd.DataFrame({"item_id": [5, "b"], "categories": ["x| y", None],
                                        "available": ["false", None], "color": ["red", None],
                                        "created_at": ["2020-01-01", None]}))
    first = out.iloc[0]
    assert first["item_id"] == "5" and first["categories"] == ["x", "y"]
    assert first["available"] is False or first["available"] == False  # noqa: E712
    assert first["attributes"] == {"color": "red"} and out.iloc[1]["attributes"] == {}
    assert first["created_at"] == 1577836800 and pd.isna(out.iloc[1]["created_at"])
    assert out.iloc[1]["available"] and not out.iloc[1]["sponsored"]


def test_items_bad_flag_and_missing_id() -> None:
    with pytest.raises(DataError) as err:
        normalize_items(pd.DataFrame({"item_id": ["a", "b"], "sponsored": ["no", "maybe"]}),
                        source="items.csv", line_offset=2)
    assert (err.value.line, err.value.field, err.value.value) == (3, "sponsored", "maybe")
    with pytest.raises(DataError) as err:
        normalize_items(pd.DataFrame({"title": ["t"]}))
    assert err.value.field == "item_id"


def test_users_interests_and_attributes() -> None:
    out = normalize_users(pd.DataFrame({"user_id": ["u"], "age": [31], "interests": ["jazz|rock"]}))
    assert out.iloc[0]["interests"] == ["jazz", "rock"]
    assert out.iloc[0]["attributes"] == {"age": 31}
    with pytest.raises(DataError):
        normalize_users(pd.DataFrame({"user_id": [None]}))
