"""A success status whose body is not the documented answer (a proxy's HTML page, a server of
another version) is a ResponseFormatError -- one of the client's errors, so callers and the
tracker's sender handle it -- never a pydantic exception escaping the client."""

from __future__ import annotations

import httpx
import pytest

import winnow_client as wc
from winnow_client import Client, TrackerOptions


def _proxy_page(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, text="<html>maintenance</html>", request=request)


def test_a_non_json_success_body_is_a_client_error() -> None:
    with Client("http://winnow.invalid", transport=httpx.MockTransport(_proxy_page)) as c:
        with pytest.raises(wc.ResponseFormatError) as info:
            c.health()
    assert info.value.status_code == 200 and "maintenance" in info.value.message
    assert isinstance(info.value, wc.WinnowError)


def test_the_tracker_counts_such_a_batch_and_keeps_sending() -> None:
    opts = TrackerOptions(batch_size=2, flush_interval=0.05)
    client = Client("http://winnow.invalid", transport=httpx.MockTransport(_proxy_page), tracker=opts,
                    retry=wc.NO_RETRY)
    try:
        for i in range(4):
            assert client.track("u1", "i1", "view", event_id=f"e{i}")
        client.tracker.flush(timeout=10)
        stats = client.tracker.stats()
        assert stats.pending == 0 and stats.sent == 0 and stats.failed == 4
        assert "the answer is not a EventsResult" in str(stats.last_error)
        assert client.track("u1", "i1", "view", event_id="e-after")  # the sender is still alive
        client.tracker.flush(timeout=10)
        assert client.tracker.stats().pending == 0 and client.tracker.stats().failed == 5
    finally:
        client.close(timeout=5)
