"""The base classes of the client's typed bodies (see ``winnow_client.models``)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, ConfigDict


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")
    server_schema: ClassVar[str]


class _Response(BaseModel):
    model_config = ConfigDict(extra="ignore")
    server_schema: ClassVar[str]
