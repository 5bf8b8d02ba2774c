"""All wiring of jobqd in one place: what starts in which order, and how it stops.

Start: open + migrate + quick_check the DB → tokens → guard (auth, limits; refused beyond
loopback without authentication) → load state → engine + admission → writer task → gRPC server
bound (TLS if configured) → address file → health SERVING → metrics → sd_notify READY. Stop
(idempotent, reverse order): health NOT_SERVING → STOPPING=1 → server.stop(grace) → metrics →
node sessions and watches → event streams → flush the writer → close the DB. Background work runs
as named, supervised tasks: one that crashes is logged and restarted with backoff, except the
writer, whose death stops the daemon (nothing may be acknowledged without it).

A failed store write (disk full, read-only data directory, I/O error) makes jobqd read-only
rather than inconsistent: the engine changed memory before the write, so memory is ahead of the
disk. The writer refuses every later write, the guard refuses state-changing RPCs with UNAVAILABLE
before they touch memory, dispatch stops, node streams are ended (nodes keep their results and
retry), and the read model is reloaded from the database — so reads keep working and show only
what is durable. A restart, once the disk is fixed, resumes normal service.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import signal
import sqlite3
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import aiosqlite
import grpc
import structlog

from jobqd.admission.local import LocalAdmission
from jobqd.api.decoding import decode_requests
from jobqd.api.jobs import JobServicer
from jobqd.api.nodes import NodeAdminServicer
from jobqd.api.queues import QueueServicer
from jobqd.api.server import bind, build_server, server_credentials, set_serving
from jobqd.auth.guard import Guard, GuardLimits
from jobqd.auth.tokens import TokenBook, TokenStore
from jobqd.domain.errors import FailedPrecondition
from jobqd.domain.events import Event
from jobqd.engine import Engine
from jobqd.events import EventHub
from jobqd.logs.files import LogStore
from jobqd.metrics import RPC_REJECTED, EventMeter, MetricsServer, Snapshot, build_snapshot
from jobqd.nodes.dispatching import Dispatch
from jobqd.nodes.registry import NodeRegistry
from jobqd.nodes.session import NodeServicer
from jobqd.settings import Settings
from jobqd.store.database import DB_NAME, connect_writer, open_db
from jobqd.store.history import History
from jobqd.store.loader import load_engine, load_queues
from jobqd.store.writer import Writer, WriteSet
from jobqd.systemd import SystemdNotifier, run_watchdog

log = structlog.get_logger("jobqd.daemon")

ADDRESS_FILE = "jobqd.addr"
NODE_CONNECT = "/jobq.v1.NodeService/Connect"


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


#: Allocations between collections of the youngest generation (Python's default is 700).
GC_YOUNG_THRESHOLD = 20_000


class Daemon:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.data_dir = Path(settings.store.data_dir)
        self.port = 0
        self.stopped = asyncio.Event()
        self._stopping = False
        self._conn: aiosqlite.Connection | None = None
        self._token_conn: aiosqlite.Connection | None = None
        self._history: History | None = None
        self._metrics: MetricsServer | None = None
        self.guard: Guard | None = None
        self._server: grpc.aio.Server | None = None
        self._health: Any = None
        self._notifier = SystemdNotifier()
        self._supervisor = Supervisor(self._fatal)
        self.fatal_error: str = ""

    # -- start -----------------------------------------------------------------------------------

    async def start(self) -> None:
        s = self.settings
        try:
            self._conn = await open_db(self.data_dir, synchronous=s.store.synchronous)
            await _quick_check(self._conn)
        except sqlite3.DatabaseError as err:
            raise _corrupt(self.data_dir, err) from err
        # before loading a large store: refuse an unsafe listen address or a bad TLS file at once
        await self._start_auth()
        assert self.guard is not None
        credentials = self._tls_credentials()
        self.hub = EventHub()
        self.meter = EventMeter()
        try:
            writer_db = connect_writer(self.data_dir, synchronous=s.store.synchronous)
        except sqlite3.DatabaseError as err:
            raise _corrupt(self.data_dir, err) from err
        self.writer = Writer(
            writer_db,
            on_commit=self._on_commit,
            on_failure=self._on_store_failure,
            max_batch=s.store.group_commit_max_batch,
            window=0.0,
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
        # Loading and recovering make millions of objects that live as long as the daemon: the
        # collector would scan them again and again while they are made (a third of a 100,000-job
        # start-up); afterwards they are kept out of full collections (they hold no reference
        # cycles that would need the collector to free them).
        gc.disable()
        try:
            await self._load_and_recover()
        finally:
            gc.enable()
        gc.freeze()
        # A submit allocates a few hundred objects and reference counting frees nearly all of
        # them; at Python's default threshold (700 allocations) the young generation was collected
        # every second or third submit: 10 % of jobqd's CPU under load (bench/run.py submit,
        # measured with gc.callbacks). 20,000 keeps each young collection well under a millisecond.
        gc.set_threshold(GC_YOUNG_THRESHOLD, 10, 10)
        self._history = await History.open(self.data_dir)
        self._jobs = JobServicer(engine=self.engine, history=self._history, events=self.hub, logs=self.logs)
        self._queues = QueueServicer(
            engine=self.engine,
            book=self.admission,
            owner=self.admission if self.kueue is None else None,
            mode=s.admission.mode,
        )
        admin = NodeAdminServicer(engine=self.engine, nodes=self.registry)
        self._server, self._health = build_server(
            jobs=self._jobs,
            queues=self._queues,
            node_admin=admin,
            node_service=NodeServicer(registry=self.registry),
            max_message_bytes=s.server.max_message_bytes,
            # the guard first: a caller without a valid token is refused before its bytes are parsed
            wraps=[self.guard.wrap, decode_requests],
        )
        self.port = bind(self._server, s.server.listen, credentials)
        if self.port == 0:
            raise OSError(f"cannot listen on {s.server.listen}")
        await self._server.start()
        self._write_address()
        await set_serving(self._health, True)
        if s.server.metrics_listen:
            self._metrics = MetricsServer(loop=asyncio.get_running_loop(), snapshot=self._snapshot)
            self._metrics.start(s.server.metrics_listen)
        self._supervisor.start("token-refresh", self.tokens.refresh_forever)
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
            auth="on" if self.guard.auth_on else "off",
            tls="mutual" if s.server.tls_client_ca else "on" if s.server.tls_cert else "off",
            event_loop=type(asyncio.get_running_loop()).__module__.split(".")[0],
        )

    async def _load_and_recover(self) -> None:
        """The engine from the store; admission, dispatch and nodes' attempts brought up to it."""
        s = self.settings
        assert self._conn is not None
        try:
            await load_engine(self._conn, self.engine)
        except sqlite3.DatabaseError as err:
            raise _corrupt(self.data_dir, err) from err
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

    async def _start_auth(self) -> None:
        """Tokens, the guard, and the refusal to expose an unauthenticated API beyond loopback."""
        s = self.settings
        self._token_conn = await aiosqlite.connect(self.data_dir / DB_NAME)
        await self._token_conn.execute("PRAGMA busy_timeout=5000")
        self.tokens = TokenBook(TokenStore(self._token_conn).hashes, refresh_s=s.auth.token_refresh_s)
        await self.tokens.reload()
        lim = s.limits
        self.guard = Guard(
            tokens=self.tokens,
            auth_required=s.auth.mode == "required",
            limits=GuardLimits(
                max_inflight_submits=lim.max_inflight_submits,
                max_inflight_submit_bytes=lim.max_inflight_submit_bytes,
                max_streams_per_identity=lim.max_streams_per_identity,
            ),
            on_reject=lambda code: RPC_REJECTED.labels(code=code.name).inc(),
        )
        listen = s.server.listen
        if not self.guard.auth_on:
            if not _is_local(listen):
                raise FailedPrecondition(
                    f"refusing to listen on {listen} without authentication: anyone who can reach it "
                    "could run commands on every node. Create a token first "
                    "(jobqd token create --role admin --name NAME), or listen on 127.0.0.1"
                )
            log.warning(
                "authentication is off: no API tokens exist, so jobqd serves on loopback only; "
                "creating a token turns authentication on",
                listen=listen,
            )
            return
        if self.tokens.count == 0:
            log.warning("authentication is required but no token exists: every call is refused until one is")
        if not _is_local(listen) and not s.server.tls_cert:
            log.warning("tokens will cross the network in clear text; serve TLS with --tls-cert/--tls-key")

    def _tls_credentials(self) -> grpc.ServerCredentials | None:
        srv = self.settings.server
        if not srv.tls_cert:
            return None

        def read(path: str, flag: str) -> bytes:
            try:
                return Path(path).read_bytes()
            except OSError as err:
                raise OSError(f"cannot read {flag} {path}: {err.strerror}") from err

        return server_credentials(
            cert=read(srv.tls_cert, "--tls-cert"),
            key=read(srv.tls_key, "--tls-key"),
            client_ca=read(srv.tls_client_ca, "--tls-client-ca") if srv.tls_client_ca else None,
        )

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
        while True:
            await asyncio.sleep(self.settings.store.maintenance_interval_s)
            await self.maintain()

    async def maintain(self) -> None:
        """quick_check + WAL checkpoint, on a connection of its own: on the writer's connection the
        checkpoint could land inside a group-commit transaction and fail."""
        t0 = time.monotonic()
        try:
            async with aiosqlite.connect(self.data_dir / DB_NAME) as conn:
                await conn.execute("PRAGMA busy_timeout=5000")
                async with conn.execute("PRAGMA quick_check") as cur:
                    row = await cur.fetchone()
                async with conn.execute("PRAGMA wal_checkpoint(TRUNCATE)") as cur:
                    busy, wal_pages, moved = await cur.fetchone() or (1, -1, -1)
        except sqlite3.Error as err:
            log.warning("store maintenance failed", error=str(err))
            return
        result = row[0] if row else None
        if result != "ok":
            log.error(
                "database quick_check failed: stop jobqd and restore a backup (docs/operations.md)",
                result=result,
            )
            return
        log.info(
            "store maintenance",
            quick_check="ok",
            checkpoint="done" if not busy else "partial (readers active)",
            wal_pages=wal_pages,
            checkpointed=moved,
            seconds=round(time.monotonic() - t0, 3),
        )

    # -- store failure: read-only ----------------------------------------------------------------

    def _on_commit(self, events: Sequence[Event]) -> None:
        self.hub.publish(events)
        self.meter.observe(events)

    def _on_store_failure(self, err: Exception) -> None:
        if self.guard is None or self.guard.read_only:
            return
        self.guard.read_only = self.writer.failed
        log.error(
            "store write failed: jobqd is read-only until restarted; reads keep working",
            error=str(err),
            data_dir=str(self.data_dir),
            fix="free disk space or make the data directory writable, then restart jobqd",
        )
        asyncio.get_running_loop().create_task(self._enter_read_only(), name="read-only")

    async def _enter_read_only(self) -> None:
        assert self.guard is not None
        await self._supervisor.stop("dispatch", "archiver")
        # nodes keep their results queued and reconnect with backoff; a restarted jobqd takes them
        self.guard.cut_streams(
            lambda _name, method: method == NODE_CONNECT, grpc.StatusCode.UNAVAILABLE, self.guard.read_only
        )
        await self._reload_read_model()

    async def _reload_read_model(self) -> None:
        """Serve reads from what is on disk: memory holds changes of the writes that failed."""
        if self.kueue is not None or self._conn is None:
            log.warning("kueue mode: reads show memory, which may include the changes that were not stored")
            return
        try:
            admission = LocalAdmission(await load_queues(self._conn))
            engine = Engine(writer=self.writer, admission=admission)
            await load_engine(self._conn, engine)
        except Exception as err:
            log.error("could not reload the stored state; reads show memory as it was", error=str(err))
            return
        for job in engine.jobs.values():
            admission.job_changed(job)
        self._jobs.engine = engine
        self._queues.engine = engine
        self._queues.book = admission
        log.info("reads now show the last committed state", jobs=len(engine.jobs))

    def _snapshot(self) -> Snapshot:
        assert self.guard is not None
        return build_snapshot(
            jobs=list(self._jobs.engine.jobs.values()),
            queues=self._queues.book.queues(),
            nodes=list(self.registry.nodes.values()),
            store=self.writer.stats,
            read_only=bool(self.guard.read_only),
            watchers=self.hub.subscribers,
            streams=self.guard.open_streams,
            submits_in_flight=self.guard.submits_in_flight,
            tokens=self.tokens.count,
        )

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
        # long-lived streams would hold server.stop() for its whole grace: end them first
        if hasattr(self, "registry"):
            self.registry.close_streams()
        if hasattr(self, "hub"):
            self.hub.close()
        if self._server is not None:
            await self._server.stop(self.settings.server.grace_s)
            # a grpc.aio server with TLS credentials still referenced at interpreter exit holds
            # the exit up by ~2 s: let it go now
            self._server = None
        if self._metrics is not None:
            # shutdown() waits for the HTTP thread, which may wait for this loop: not on the loop
            await asyncio.to_thread(self._metrics.stop)
        await self._supervisor.stop(
            "dispatch", "node-reaper", "archiver", "maintenance", "watchdog", "token-refresh"
        )
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
            await self.writer.release()
        if self._history is not None:
            await self._history.close()
        if self._token_conn is not None:
            await self._token_conn.close()
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


def _is_local(listen: str) -> bool:
    """Only this machine can connect: a loopback address or a Unix socket."""
    if listen.startswith(("unix:", "unix-abstract:")):
        return True
    host = listen.rsplit(":", 1)[0].strip("[]")
    return host in ("localhost", "::1") or host.startswith("127.")


async def _quick_check(conn: aiosqlite.Connection) -> None:
    async with conn.execute("PRAGMA quick_check") as cur:
        rows = [str(r[0]) async for r in cur]
    if rows != ["ok"]:
        raise sqlite3.DatabaseError("; ".join(rows[:3]))


def _corrupt(data_dir: Path, err: Exception) -> FailedPrecondition:
    return FailedPrecondition(
        f"the database {data_dir / DB_NAME} is damaged ({err}); jobqd will not start on it. "
        "Restore the last backup (docs/operations.md#backup-and-restore)"
    )


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
