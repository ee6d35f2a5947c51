"""Hot reload of the tools directories: on change (polled mtimes) or on SIGHUP.

A reload loads the catalog again (off the event loop), keeps the last good version of any
manifest that loaded before but is refused now, builds a new registry and swaps it into the
pipeline in one assignment — calls already running finish with the tool they started with —
then tells connected clients (`notifications/tools/list_changed`, the subscription bus) when
the tool list really changed.

Polling was chosen over `watchfiles` (not a dependency): one `stat` per file per second is
nothing next to a manifest directory's size, works on every filesystem (NFS and container
bind mounts included, where inotify is unreliable), and needs no native wheel.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import anyio

from mcp_server._catalog import load_catalog
from mcp_server._config import DEFAULT_WATCH_INTERVAL
from mcp_server._gc import settle_heap
from mcp_server._model import Catalog, Connector, ManifestFault
from mcp_server._pipeline import Pipeline
from mcp_server._registry import Registry
from mcp_server._startup_snapshot import tree_stats

logger = logging.getLogger("mcp_server.reload")


@dataclass(frozen=True, slots=True)
class KeptVersion:
    """A manifest refused on reload whose previous, valid version is still served."""

    connector: Connector
    fault: ManifestFault


@dataclass(slots=True)
class CatalogState:
    """What is served now: the catalog (kept versions included) and the latest faults."""

    catalog: Catalog
    kept: tuple[KeptVersion, ...] = ()
    reloads: int = 0
    last_error: str | None = None
    listeners: list[Callable[[], Awaitable[None]]] = field(default_factory=list[Callable[[], Awaitable[None]]])
    """Called after a reload changed the tool list (tell MCP clients, drop cached listings)."""


def _names(connector: Connector) -> set[str]:
    return {f"connector:{connector.name}", *(f"tool:{connector.name}_{op.name}" for op in connector.operations)}


def keep_last_good(previous: Catalog, fresh: Catalog) -> tuple[Catalog, tuple[KeptVersion, ...]]:
    """`fresh`, plus the previous version of every manifest that `fresh` refused but `previous` served.

    A deleted manifest is not kept (deleting it is how a connector is removed), nor one whose names
    another manifest now holds.
    """
    loaded = {connector.source for connector in fresh.connectors}
    refused = {fault.file: fault for fault in fresh.faults}
    taken: set[str] = set()
    for connector in fresh.connectors:
        taken |= _names(connector)
    kept: list[KeptVersion] = []
    for connector in previous.connectors:
        source = connector.source
        if source is None or source in loaded or source not in refused:
            continue
        names = _names(connector)
        if names & taken:
            logger.warning("%s: its previous version is not kept: another manifest now uses its names", source)
            continue
        taken |= names
        kept.append(KeptVersion(connector, refused[source]))
    if not kept:
        return fresh, ()
    merged = Catalog(connectors=(*fresh.connectors, *(k.connector for k in kept)), faults=fresh.faults)
    return merged, tuple(kept)


def _listing(registry: Registry) -> list[object]:
    return [tool.mcp_tool for tool in registry]


class CatalogReloader:
    """Reloads the catalog into `pipeline`; `run()` watches the directories and SIGHUP until cancelled."""

    def __init__(
        self,
        pipeline: Pipeline,
        state: CatalogState,
        *,
        tools_dirs: Sequence[Path],
        include: Sequence[str] = (),
        exclude: Sequence[str] = (),
    ) -> None:
        self._pipeline = pipeline
        self.state = state
        self._dirs = tuple(tools_dirs)
        self._include = tuple(include)
        self._exclude = tuple(exclude)
        self._lock = anyio.Lock()
        # Taken now, right after the catalog was loaded, so a change made before watching starts is seen.
        self._snapshot = tree_stats(self._dirs)
        self._report_size()

    def _report_size(self) -> None:
        catalog = self.state.catalog
        self._pipeline.metrics.catalog_size(
            connectors=len(catalog.connectors), tools=len(self._pipeline.registry), faults=len(catalog.faults)
        )

    async def reload(self, reason: str) -> bool:
        """Load, merge, swap, notify. Returns whether the tool list changed. Never raises (it logs)."""
        async with self._lock:
            metrics = self._pipeline.metrics
            try:
                fresh = await anyio.to_thread.run_sync(load_catalog, self._dirs)
                catalog, kept = keep_last_good(self.state.catalog, fresh)
                registry = await anyio.to_thread.run_sync(self._build_registry, catalog)
            except Exception as exc:  # a bug, or the filesystem going away: keep serving what we have
                logger.exception("catalog reload (%s) failed; still serving the previous catalog", reason)
                self.state.last_error = f"{type(exc).__name__}: {exc}"
                metrics.catalog_reloaded("error")
                return False
            for fault in fresh.faults:
                logger.error("manifest fault: %s", fault)
            for version in kept:
                logger.warning(
                    "%s is refused; still serving its previous version (%s)",
                    version.fault.file,
                    version.connector.name,
                )
            changed = _listing(registry) != _listing(self._pipeline.registry)
            self._pipeline.swap_registry(registry)
            self.state.catalog = catalog
            settle_heap()  # the previous catalog may sit in the frozen generation (_gc)
            self.state.kept = kept
            self.state.reloads += 1
            self.state.last_error = None
            self._report_size()
            metrics.catalog_reloaded("faults" if fresh.faults else "ok")
            logger.info(
                "catalog reloaded (%s): %d connectors, %d tools, %d faults%s",
                reason,
                len(catalog.connectors),
                len(registry),
                len(fresh.faults),
                "" if changed else "; tool list unchanged",
                extra={"event": "catalog_reload", "changed": changed},
            )
        if changed:
            for listener in list(self.state.listeners):
                try:
                    await listener()
                except Exception:
                    logger.exception("a tools/list_changed listener failed")
        return changed

    def _build_registry(self, catalog: Catalog) -> Registry:
        return Registry.from_catalog(catalog, include=self._include, exclude=self._exclude)

    async def run(self, *, watch: bool = True, interval: float = DEFAULT_WATCH_INTERVAL, sighup: bool = True) -> None:
        """Watch until cancelled: poll every `interval` seconds when `watch`, reload on SIGHUP when `sighup`."""
        async with anyio.create_task_group() as group:
            if sighup and hasattr(signal, "SIGHUP"):
                group.start_soon(self._on_sighup)
            if watch:
                group.start_soon(self._poll, interval)

    async def _on_sighup(self) -> None:
        try:
            receiver = anyio.open_signal_receiver(signal.SIGHUP)
            with receiver as signals:
                async for _ in signals:
                    logger.info("SIGHUP: reloading the tools directories")
                    await self.reload("SIGHUP")
        except (NotImplementedError, RuntimeError, ValueError):  # not the main thread, or no signals here
            logger.debug("SIGHUP reload is not available in this process")

    async def _poll(self, interval: float) -> None:
        while True:
            await anyio.sleep(interval)
            current = await anyio.to_thread.run_sync(tree_stats, self._dirs)
            if current == self._snapshot:
                continue
            # Let a multi-step save (write, rename, chmod) settle before reading the files.
            while True:
                await anyio.sleep(min(interval, 0.2))
                settled = await anyio.to_thread.run_sync(tree_stats, self._dirs)
                if settled == current:
                    break
                current = settled
            self._snapshot = current
            await self.reload("files changed")
