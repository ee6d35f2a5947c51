"""The frozen model of what has been loaded: connectors, their auth and operations.

Built once by `_catalog` from validated manifests and never mutated afterwards;
JSON Schema fragments stay plain dicts because validators and clients consume them as such.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from mcp_server._secrets import ValueRef

ParameterLocation = Literal["path", "query", "header", "cookie"]
HttpMethod = Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
PATH_PLACEHOLDER = re.compile(r"\{([^{}]+)\}")
"""`{name}` in an operation path; the catalog checks them, the request builder expands them."""
JSON_CONTENT_TYPE = "application/json"
FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"


@dataclass(frozen=True, slots=True)
class NoAuth:
    pass


@dataclass(frozen=True, slots=True)
class BearerAuth:
    token: ValueRef
    scheme: str = "Bearer"


@dataclass(frozen=True, slots=True)
class ApiKeyAuth:
    location: Literal["header", "query", "cookie"]
    name: str
    value: ValueRef


@dataclass(frozen=True, slots=True)
class BasicAuth:
    username: ValueRef
    password: ValueRef


@dataclass(frozen=True, slots=True)
class HeadersAuth:
    headers: Mapping[str, ValueRef]


Auth = NoAuth | BearerAuth | ApiKeyAuth | BasicAuth | HeadersAuth


@dataclass(frozen=True, slots=True)
class Parameter:
    name: str
    location: ParameterLocation
    schema: Mapping[str, Any]
    required: bool = False
    description: str | None = None
    style: str | None = None
    explode: bool | None = None

    @property
    def effective_style(self) -> str:
        """OpenAPI's defaults: `simple` for path and header, `form` for query and cookie."""
        if self.style is not None:
            return self.style
        return "simple" if self.location in ("path", "header") else "form"

    @property
    def effective_explode(self) -> bool:
        if self.explode is not None:
            return self.explode
        return self.effective_style == "form"


@dataclass(frozen=True, slots=True)
class Body:
    schema: Mapping[str, Any]
    content_type: str = JSON_CONTENT_TYPE
    required: bool = False
    description: str | None = None


@dataclass(frozen=True, slots=True)
class Operation:
    name: str
    method: HttpMethod
    path: str
    title: str | None = None
    description: str | None = None
    parameters: tuple[Parameter, ...] = ()
    body: Body | None = None
    headers: Mapping[str, ValueRef] = field(default_factory=dict[str, ValueRef])
    timeout: float | None = None
    annotations: Mapping[str, bool] = field(default_factory=dict[str, bool])


@dataclass(frozen=True, slots=True)
class Connector:
    name: str
    base_url: str
    operations: tuple[Operation, ...]
    title: str | None = None
    description: str | None = None
    auth: Auth = field(default_factory=NoAuth)
    headers: Mapping[str, ValueRef] = field(default_factory=dict[str, ValueRef])
    timeout: float = 30.0
    source: Path | None = None


@dataclass(frozen=True, slots=True)
class ManifestFault:
    """Why one manifest file was refused: its file, the JSON path of the fault and a one-line reason."""

    file: Path
    json_path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.file}: at {self.json_path}: {self.reason}"


@dataclass(frozen=True, slots=True)
class Catalog:
    connectors: tuple[Connector, ...]
    faults: tuple[ManifestFault, ...] = ()
