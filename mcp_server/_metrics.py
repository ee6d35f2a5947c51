"""Prometheus metrics, on a registry of their own (never the process-global one).

Label values are bounded: `tool` is a registered tool name or `unknown` (a name no catalog
defined, never the name a request sent), `connector` a connector name from the catalog,
`outcome` is `ok` or a stable error code, `code` an HTTP status from a fixed list or its class
(`4xx`), `kind` a transport failure kind, `transport` and `state` fixed words.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

__all__ = ["CONTENT_TYPE_LATEST", "UNKNOWN_TOOL", "CallMetrics", "status_label"]

UNKNOWN_TOOL = "unknown"
"""The one label value for every tool name that is not in the catalog (real tool names contain `_`)."""

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
"""From a cached local call (milliseconds) to the default 60 s total deadline."""

WAIT_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

_NAMED_STATUSES = frozenset(
    {200, 201, 202, 204, 301, 302, 304, 400, 401, 403, 404, 408, 409, 410, 422, 429, 500, 501, 502, 503, 504}
)
"""Statuses worth a series of their own; every other status is counted under its class (`4xx`)."""

BREAKER_STATES = ("closed", "open", "half_open")
SESSION_TRANSPORTS = ("streamable_http", "sse", "subscriptions")


def status_label(status: int) -> str:
    """`429`, or `4xx` for a status outside the fixed list: at most ~26 values per connector."""
    if status in _NAMED_STATUSES:
        return str(status)
    if 100 <= status <= 599:
        return f"{status // 100}xx"
    return "other"


class _BreakerCollector(Collector):
    """Circuit breakers per connector and state, read when scraped (open turns half-open by the clock)."""

    def __init__(self) -> None:
        self.source: Callable[[], Iterable[tuple[str, str]]] = lambda: ()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "mcp_connectors_circuit_breakers",
            "Circuit breakers by connector and current state (one breaker per connector and account).",
            labels=["connector", "state"],
        )
        counts: dict[tuple[str, str], int] = {}
        for connector, state in self.source():
            for candidate in BREAKER_STATES:
                key = (connector, candidate)
                counts[key] = counts.get(key, 0) + (1 if candidate == state else 0)
        for (connector, state), count in sorted(counts.items()):
            family.add_metric([connector, state], count)
        yield family


class CallMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        registry = self.registry
        self._calls = Counter(
            "mcp_connectors_tool_calls",
            "Tool calls by tool and outcome (ok or the error code).",
            ["tool", "outcome"],
            registry=registry,
        )
        self._duration = Histogram(
            "mcp_connectors_tool_call_duration_seconds",
            "Time from arguments received to result shaped, per tool.",
            ["tool"],
            registry=registry,
            buckets=LATENCY_BUCKETS,
        )
        self._in_flight = Gauge("mcp_connectors_tool_calls_in_flight", "Tool calls running now.", registry=registry)
        self.in_flight = 0
        self._upstream = Counter(
            "mcp_connectors_upstream_responses",
            "Upstream HTTP responses by connector and status (a fixed list of codes, else the class: 4xx).",
            ["connector", "code"],
            registry=registry,
        )
        self._upstream_failures = Counter(
            "mcp_connectors_upstream_failures",
            "Upstream attempts that got no response, by connector and kind (connect, connect_timeout, "
            "read_timeout, reset).",
            ["connector", "kind"],
            registry=registry,
        )
        self._retries = Counter(
            "mcp_connectors_upstream_retries",
            "Upstream requests sent again, by connector and reason (a status code or a failure kind).",
            ["connector", "reason"],
            registry=registry,
        )
        self._rate_waits = Histogram(
            "mcp_connectors_rate_limit_wait_seconds",
            "Waits for the client-side rate limit, by connector (calls that did not wait are not counted).",
            ["connector"],
            registry=registry,
            buckets=WAIT_BUCKETS,
        )
        self._rate_refusals = Counter(
            "mcp_connectors_rate_limit_refusals",
            "Calls refused by the client-side rate limit (the wait would have been too long), by connector.",
            ["connector"],
            registry=registry,
        )
        self._breaker_transitions = Counter(
            "mcp_connectors_circuit_breaker_transitions",
            "Circuit breaker state changes by connector and the state entered.",
            ["connector", "state"],
            registry=registry,
        )
        self._breaker_refusals = Counter(
            "mcp_connectors_circuit_breaker_refusals",
            "Calls refused with CIRCUIT_OPEN, by connector (no upstream request was sent).",
            ["connector"],
            registry=registry,
        )
        self._breakers = _BreakerCollector()
        registry.register(self._breakers)
        self._sessions = Gauge(
            "mcp_connectors_active_sessions",
            "Open MCP sessions: streamable_http (stateful sessions), sse (legacy SSE streams), "
            "subscriptions (2026-07-28 subscriptions/listen streams).",
            ["transport"],
            registry=registry,
        )
        for transport in SESSION_TRANSPORTS:
            self._sessions.labels(transport).set(0)
        self._reloads = Counter(
            "mcp_connectors_catalog_reloads",
            "Catalog reloads by result: ok, faults (some manifests refused) or error.",
            ["result"],
            registry=registry,
        )
        self._catalog = Gauge(
            "mcp_connectors_catalog",
            "What is being served: connectors, tools, manifest_faults.",
            ["item"],
            registry=registry,
        )

    def observe(self, tool: str, outcome: str, seconds: float) -> None:
        self._calls.labels(tool, outcome).inc()
        self._duration.labels(tool).observe(seconds)

    def observe_unknown_tool(self) -> None:
        self._calls.labels(UNKNOWN_TOOL, "UNKNOWN_TOOL").inc()

    def call_started(self) -> None:
        self.in_flight += 1
        self._in_flight.inc()

    def call_finished(self) -> None:
        self.in_flight -= 1
        self._in_flight.dec()

    def upstream_response(self, connector: str, status: int) -> None:
        self._upstream.labels(connector, status_label(status)).inc()

    def upstream_failure(self, connector: str, kind: str) -> None:
        self._upstream_failures.labels(connector, kind).inc()

    def retry(self, connector: str, reason: str) -> None:
        self._retries.labels(connector, reason).inc()

    def rate_limit_wait(self, connector: str, seconds: float) -> None:
        self._rate_waits.labels(connector).observe(seconds)

    def rate_limit_refused(self, connector: str) -> None:
        self._rate_refusals.labels(connector).inc()

    def breaker_transition(self, connector: str, state: str) -> None:
        self._breaker_transitions.labels(connector, state).inc()

    def breaker_refused(self, connector: str) -> None:
        self._breaker_refusals.labels(connector).inc()

    def watch_breakers(self, source: Callable[[], Iterable[tuple[str, str]]]) -> None:
        """`source()` yields (connector, state) for every breaker; read at every scrape."""
        self._breakers.source = source

    def session_opened(self, transport: str) -> None:
        self._sessions.labels(transport).inc()

    def session_closed(self, transport: str) -> None:
        self._sessions.labels(transport).dec()

    def watch_sessions(self, transport: str, source: Callable[[], float]) -> None:
        """Read the open-session count of `transport` from `source()` at every scrape."""
        self._sessions.labels(transport).set_function(source)

    def catalog_reloaded(self, result: str) -> None:
        self._reloads.labels(result).inc()

    def catalog_size(self, *, connectors: int, tools: int, faults: int) -> None:
        self._catalog.labels("connectors").set(connectors)
        self._catalog.labels("tools").set(tools)
        self._catalog.labels("manifest_faults").set(faults)

    def render(self) -> bytes:
        return generate_latest(self.registry)
