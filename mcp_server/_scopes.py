"""Scopes: which tools a client may list and call, and the per-scope-set views of the registry.

    tools:*                    every tool
    tools:*:read               every read-only tool (readOnlyHint true)
    tools:CONNECTOR:*          every tool of one connector
    tools:CONNECTOR:read       the read-only tools of one connector
    tools:TOOL                 one tool, by its full name (tools:github_create_issue)
    operator                   /metrics and /v1/status (no tool at all)

A connector scope always has a second part (`tools:github` names a tool called `github`). Strings of
any other shape are not ours (an OAuth token may carry `openid email`) and grant nothing.

What a client may call is exactly what it may list. A name it may not list is refused as FORBIDDEN
whether or not a tool of that name exists; only a client that may list every tool (`tools:*`) is
told that a name is unknown, which then reveals nothing it could not list itself.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from mcp_server._discovery import ToolIndex
from mcp_server._errors import UnknownTool
from mcp_server._registry import Registry, ToolSpec

OPERATOR_SCOPE = "operator"
_CONNECTOR = r"[a-z][a-z0-9_]{0,31}"
_SCOPE_RE = re.compile(
    rf"tools:(?:(?P<all>\*)(?::(?P<all_part>\*|read))?|(?P<connector>{_CONNECTOR}):(?P<part>\*|read)"
    r"|(?P<tool>[A-Za-z0-9_-]{1,64}))"
)
MAX_CACHED_VIEWS = 256
"""Distinct scope sets whose filtered listings are kept; a client's view is built once, not per request."""


def is_scope(text: str) -> bool:
    """Whether `text` is a scope of this server (the grammar in the module docstring)."""
    return text == OPERATOR_SCOPE or _SCOPE_RE.fullmatch(text) is not None


def read_only(tool: ToolSpec) -> bool:
    return tool.annotations.get("readOnlyHint") is True


@dataclass(frozen=True, slots=True)
class Scopes:
    """A parsed set of scopes; hashable, so equal sets share one cached view."""

    every_tool: bool = False
    every_read: bool = False
    connectors: frozenset[str] = frozenset()
    connectors_read: frozenset[str] = frozenset()
    tools: frozenset[str] = frozenset()
    operator: bool = False

    @classmethod
    def parse(cls, scopes: Iterable[str]) -> Scopes:
        every_tool = every_read = operator = False
        connectors: set[str] = set()
        connectors_read: set[str] = set()
        tools: set[str] = set()
        for scope in scopes:
            if scope == OPERATOR_SCOPE:
                operator = True
                continue
            match = _SCOPE_RE.fullmatch(scope)
            if match is None:
                continue
            if match["all"]:
                if match["all_part"] == "read":
                    every_read = True
                else:
                    every_tool = True
            elif match["connector"]:
                (connectors_read if match["part"] == "read" else connectors).add(match["connector"])
            else:
                tools.add(match["tool"])
        return cls(
            every_tool, every_read, frozenset(connectors), frozenset(connectors_read), frozenset(tools), operator
        )

    @property
    def any_tool(self) -> bool:
        """Whether these scopes could grant any tool at all (else the tool endpoints answer 403)."""
        return bool(self.every_tool or self.every_read or self.connectors or self.connectors_read or self.tools)

    def allows(self, tool: ToolSpec) -> bool:
        if self.every_tool or tool.name in self.tools:
            return True
        connector = tool.connector.name
        if connector in self.connectors:
            return True
        return (self.every_read or connector in self.connectors_read) and read_only(tool)


EVERYTHING = Scopes(every_tool=True, operator=True)
NOTHING = Scopes()

Verdict = Literal["allowed", "unknown", "forbidden"]


class ToolView:
    """The tools one scope set may list and call, with everything a listing needs cached.

    In `--read-only` mode only read-only tools are served at all: to a `tools:*` client any other name
    is unknown, as if the catalog had only the read-only tools.
    """

    def __init__(self, registry: Registry, scopes: Scopes, *, read_only_mode: bool = False) -> None:
        self.everything = scopes.every_tool
        if self.everything and not read_only_mode:
            self.registry = registry
        else:
            self.registry = Registry([t for t in registry if scopes.allows(t) and (read_only(t) or not read_only_mode)])
        self.listings: dict[str, bytes] = {}
        """REST `/v1/tools` bodies by format, filled by the REST façade."""
        self._index: ToolIndex | None = None

    @property
    def index(self) -> ToolIndex:
        """The discovery-mode search index over this view's tools, built on first use."""
        if self._index is None:
            self._index = ToolIndex(list(self.registry))
        return self._index

    def verdict(self, name: str) -> Verdict:
        """`allowed`; `unknown` only when the view is the whole catalog; else `forbidden` (see module doc)."""
        try:
            self.registry.get(name)
        except UnknownTool:
            return "unknown" if self.everything else "forbidden"
        return "allowed"


class ToolViews:
    """One `ToolView` per scope set over the current registry (a replaced registry drops them all)."""

    def __init__(self, *, read_only_mode: bool = False) -> None:
        self._read_only_mode = read_only_mode
        self._registry: Registry | None = None
        self._views: OrderedDict[Scopes, ToolView] = OrderedDict()

    def get(self, registry: Registry, scopes: Scopes) -> ToolView:
        if registry is not self._registry:
            self._registry = registry
            self._views.clear()
        view = self._views.get(scopes)
        if view is None:
            view = self._views[scopes] = ToolView(registry, scopes, read_only_mode=self._read_only_mode)
            if len(self._views) > MAX_CACHED_VIEWS:
                self._views.popitem(last=False)
        else:
            self._views.move_to_end(scopes)
        return view
