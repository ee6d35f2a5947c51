"""Prometheus metrics for tool calls, on a registry of their own (never the process-global one).

Label values are bounded: `tool` is always a registered tool name (unknown names are
never recorded) and `outcome` is `ok` or a stable error code.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["CONTENT_TYPE_LATEST", "CallMetrics"]


class CallMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._calls = Counter(
            "mcp_connectors_tool_calls",
            "Tool calls by tool and outcome (ok or the error code).",
            ["tool", "outcome"],
            registry=self.registry,
        )
        self._duration = Histogram(
            "mcp_connectors_tool_call_duration_seconds",
            "Time from arguments received to result shaped, per tool.",
            ["tool"],
            registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )

    def observe(self, tool: str, outcome: str, seconds: float) -> None:
        self._calls.labels(tool, outcome).inc()
        self._duration.labels(tool).observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
