"""All wiring of jobqd in one place: what starts in which order, and how it stops.

Start: open + migrate the DB → load state → engine + admission → writer task → gRPC server bound
→ address file → health SERVING → sd_notify READY. Stop (idempotent, reverse order): health
NOT_SERVING → STOPPING=1 → server.stop(grace) → node sessions and watches → event streams →
flush the writer → close the DB. Background work runs as named, supervised tasks: one that
crashes is logged and restarted with backoff, except the writer, whose death stops the daemon
(nothing may be acknowledged without it).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiosqlite
import grpc
import structlog

from jobqd.admission.local import LocalAdmission
from jobqd.api.jobs import JobServicer
from jobqd.api.nodes import NodeAdminServicer
from jobqd.api.queues import QueueServicer
from jobqd.api.server import build_server, set_serving
from jobqd.engine import Engine
from jobqd.events import EventHub
from jobqd.logs.files import LogStore
from jobqd.nodes.dispatching import Dispatch
from jobqd.nodes.registry import NodeRegistry
from jobqd.nodes.session import NodeServicer
from jobqd.settings import Settings
from jobqd.store.database import open_db
from jobqd.store.history import History
from jobqd.store.loader import load_engine, load_queues
from jobqd.store.writer import Writer, WriteSet
from jobqd.systemd import SystemdNotifier, run_watchdog

log = structlog.get_logger("jobqd.daemon")

ADDRESS_FILE = "jobqd.addr"


class Supervisor:
    """Named background tasks; a crash is logged and the task restarted with backoff, or — for a
    critical task — the daemon is told to stop."""

    def __init__(self, on_fatal: Callable[[str, BaseException], None]) -> None:
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._on_fatal = on_fatal

    def start(self, name: str, factory: Callable[[], Awaitable[None]], *, critical: bool = False) -> None:
        async def guard() -> None:
            delay = 0.5
            while True:
                started = time.monotonic()
                try:
                    await factory()
                    return
                except asyncio.CancelledError:
                    raise
                except Exception as err:
                    if critical:
                        log.exception("critical task failed; stopping", task=name)
                        self._on_fatal(name, err)
                        return
                    log.exception("background task failed; restarting", task=name, retry_in_s=delay)
                if time.monotonic() - started > 60:
                    delay = 0.5
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)

        self._tasks[name] = asyncio.create_task(guard(), name=name)

    async def stop(self, *names: str) -> None:
        for name in names or list(self._tasks):
            task = self._tasks.pop(name, None)
            if task is None:
                continue
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def task(self, name: str) -> asyncio.Task[None] | None:
        return self._tasks.get(name)


class Daemon:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.data_dir = Path(settings.store.data_dir)
        self.port = 0
        self.stopped = asyncio.Event()
        self._stopping = False
        self._conn: aiosqlite.Connection | None = None
        self._history: History | None = None
        self._server: grpc.aio.Server | None = None
        self._health: Any = None
        self._notifier = SystemdNotifier()
        self._supervisor = Supervisor(self._fatal)
        self.fatal_error: str = ""

    # -- start -----------------------------------------------------------------------------------

    async def start(self) -> None:
        s = self.settings
        self._conn = await open_db(self.data_dir, synchronous=s.store.synchronous)
        self.hub = EventHub()
        self.writer = Writer(
            self._conn, on_commit=self.hub.publish, max_batch=s.store.group_commit_max_batch, window=0.0
        )
        self.kueue: Any = None
        self.registry: NodeRegistry
        if s.admission.mode == "kueue":
            from jobqd.admission.kueue.backend import KueueAdmission  # type: ignore[import-not-found,unused-ignore]

            # the registry is built below; the lambda defers the lookup until the backend runs
            self.kueue = KueueAdmission(
                s.admission,
                running_attempts=lambda job_id: self.registry.running_of(job_id),  # noqa: PLW0108
            )
            self.admission: Any = self.kueue
        else:
            self.admission = LocalAdmission(await load_queues(self._conn))
        self.engine = Engine(writer=self.writer, admission=self.admission)
        await load_engine(self._conn, self.engine)
        self.hub.start_at(self.engine.next_event_seq - 1)
        self._supervisor.start("store-writer", self.writer.run, critical=True)
        self.logs = LogStore(self.data_dir / "logs")
        self.registry = NodeRegistry(engine=self.engine, settings=s.dispatch, logs=self.logs)
        self.dispatch = Dispatch(engine=self.engine, registry=self.registry)
        self.engine.dispatcher = self.dispatch
        if self.kueue is not None:
            self.dispatch.flavor_labels = self.kueue.flavor_labels
        ws = WriteSet()
        if self.kueue is None:
            self.admission.ensure_default(ws)
        for job in list(self.engine.jobs.values()):
            self.admission.job_changed(job)
        self.registry.recover(ws)
        await self.engine.commit_background(ws)
        self._history = await History.open(self.data_dir)
        jobs = JobServicer(engine=self.engine, history=self._history, events=self.hub, logs=self.logs)
        queues = QueueServicer(
            engine=self.engine,
            book=self.admission,
            owner=self.admission if self.kueue is None else None,
            mode=s.admission.mode,
        )
        admin = NodeAdminServicer(engine=self.engine, nodes=self.registry)
        self._server, self._health = build_server(
            jobs=jobs,
            queues=queues,
            node_admin=admin,
            node_service=NodeServicer(registry=self.registry),
            max_message_bytes=s.server.max_message_bytes,
        )
        self.port = self._server.add_insecure_port(s.server.listen)
        if self.port == 0:
            raise OSError(f"cannot listen on {s.server.listen}")
        await self._server.start()
        self._write_address()
        await set_serving(self._health, True)
        self._supervisor.start("dispatch", self.dispatch.run)
        if self.kueue is not None:
            # the Kueue backend runs its own supervised watch loops; it never crash-loops the daemon
            await self.kueue.start()
        self._supervisor.start("node-reaper", self.registry.reap_forever)
        self._supervisor.start("archiver", self._archive_forever)
        self._supervisor.start("maintenance", self._maintenance_forever)
        interval = self._notifier.watchdog_interval()
        if interval:
            self._supervisor.start("watchdog", lambda: run_watchdog(self._notifier, interval))
        self._notifier.ready(f"serving on {self.address}")
        log.info(
            "jobqd ready",
            address=self.address,
            data_dir=str(self.data_dir),
            admission=s.admission.mode,
            jobs=len(self.engine.jobs),
            next_event=self.engine.next_event_seq,
        )
        if not _is_loopback(s.server.listen):
            log.warning("listening beyond loopback without authentication", listen=s.server.listen)

    @property
    def address(self) -> str:
        host = self.settings.server.listen.rsplit(":", 1)[0] or "127.0.0.1"
        if host in ("0.0.0.0", "[::]", ""):
            host = "127.0.0.1"
        return f"{host}:{self.port}"

    def _write_address(self) -> None:
        # tests and scripts that start jobqd on port 0 read the real address from here
        tmp = self.data_dir / (ADDRESS_FILE + ".tmp")
        tmp.write_text(self.address + "\n")
        os.replace(tmp, self.data_dir / ADDRESS_FILE)

    # -- background work -------------------------------------------------------------------------

    async def _archive_forever(self) -> None:
        s = self.settings.store
        while True:
            await asyncio.sleep(s.archive_interval_s)
            old = self.engine.archive_candidates(time.time() - s.retention_s)
            for i in range(0, len(old), 500):
                await self.engine.archive(old[i : i + 500])
            if old:
                log.info("archived finished jobs", count=len(old))

    async def _maintenance_forever(self) -> None:
        assert self._conn is not None
        while True:
            await asyncio.sleep(self.settings.store.maintenance_interval_s)
            async with self._conn.execute("PRAGMA quick_check") as cur:
                row = await cur.fetchone()
            if not row or row[0] != "ok":
                log.error("database quick_check failed", result=row[0] if row else None)
            await self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    # -- stop ------------------------------------------------------------------------------------

    def _fatal(self, name: str, err: BaseException) -> None:
        self.fatal_error = f"{name}: {err}"
        self.request_stop()

    def request_stop(self) -> None:
        self.stopped.set()

    async def stop(self) -> None:
        if self._stopping:
            return
        self._stopping = True
        log.info("jobqd stopping")
        if self._health is not None:
            await set_serving(self._health, False)
        self._notifier.stopping("shutting down")
        if self._server is not None:
            await self._server.stop(self.settings.server.grace_s)
        await self._supervisor.stop("dispatch", "node-reaper", "archiver", "maintenance", "watchdog")
        kueue = getattr(self, "kueue", None)
        if kueue is not None:
            await kueue.stop()
        if hasattr(self, "hub"):
            self.hub.close()
        if hasattr(self, "writer"):
            await self.writer.close()
            task = self._supervisor.task("store-writer")
            if task is not None:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await asyncio.wait_for(asyncio.shield(task), timeout=10)
            await self._supervisor.stop()
        if self._history is not None:
            await self._history.close()
        if self._conn is not None:
            await self._conn.close()
        with contextlib.suppress(FileNotFoundError):
            (self.data_dir / ADDRESS_FILE).unlink()
        log.info("jobqd stopped")

    async def __aenter__(self) -> Daemon:
        try:
            await self.start()
        except BaseException:
            await self.stop()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


def _is_loopback(listen: str) -> bool:
    host = listen.rsplit(":", 1)[0].strip("[]")
    return host in ("127.0.0.1", "localhost", "::1") or host.startswith("127.")


async def serve(settings: Settings) -> int:
    """Run until SIGTERM/SIGINT; the exit status of the daemon process."""
    daemon = Daemon(settings)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, daemon.request_stop)
    async with daemon:
        await daemon.stopped.wait()
    if daemon.fatal_error:
        log.error("jobqd stopped after a fatal error", error=daemon.fatal_error)
        return 1
    return 0
