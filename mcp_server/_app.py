"""Wiring: settings → catalog → registry → pipeline, shared by every command."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from mcp_server._audit import AuditLog
from mcp_server._catalog import load_catalog
from mcp_server._config import Settings
from mcp_server._model import Catalog
from mcp_server._pipeline import Pipeline
from mcp_server._registry import Registry
from mcp_server._vault_store import open_vault

logger = logging.getLogger("mcp_server")


@dataclass(frozen=True, slots=True)
class Application:
    settings: Settings
    catalog: Catalog
    pipeline: Pipeline


def build_application(settings: Settings) -> Application:
    """Load what `settings` name; a refused manifest is logged and the rest still load."""
    catalog = load_catalog(settings.tools_dirs)
    for fault in catalog.faults:
        logger.error("manifest fault: %s", fault)
    registry = Registry.from_catalog(catalog, include=settings.include_tools, exclude=settings.exclude_tools)
    logger.info("loaded %d connectors, %d tools", len(catalog.connectors), len(registry))
    pipeline = Pipeline(
        registry,
        open_vault(settings),
        environ=settings.environ,
        allow_networks=settings.allow_networks,
        accounts=settings.accounts,
        audit=AuditLog(settings.audit_log) if settings.audit_log is not None else None,
    )
    return Application(settings, catalog, pipeline)
