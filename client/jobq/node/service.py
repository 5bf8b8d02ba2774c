"""Wiring: builds the node's parts, runs them, and stops them in a fixed order.

Start: work dir → outbox, flusher, attempts context, node → channel → stream.
Stop (SIGTERM/SIGINT, or a background task dying): take no new work → abort running attempts with
the grace period and wait for their reports → give the results up to ``shutdown_flush_s`` to reach
jobqd → half-close the stream → cancel the rest → close the channel. A second signal skips the
rest of the grace period (SIGKILL to all process groups).
"""

from __future__ import annotations

import asyncio
import functools
import os
import sys
from collections.abc import Collection, Mapping
from importlib.metadata import PackageNotFoundError, version

import grpc
import grpc.aio
import structlog

from jobq.node.allowlist import Allowlist
from jobq.node.attempts import AttemptContext, scrubbed_environment
from jobq.node.batching import Flusher
from jobq.node.commands import BUILTIN_TYPES, PROCESS_TYPES
from jobq.node.identity import RunAs, describe_user, resolve_run_as, unreachable_parent
from jobq.node.limits import find_prlimit
from jobq.node.node import Node
from jobq.node.outbox import Outbox
from jobq.node.plugins import CommandPlugin
from jobq.node.settings import ConnectionSettings, ExecutionSettings, NodeSettings
from jobq.node.streaming import Stream
from jobq.v1 import node_service_pb2 as pb

log = structlog.get_logger(__name__)


@functools.cache
def node_version() -> str:
    """The installed jobq version."""
    try:
        return version("jobq")
    except PackageNotFoundError:
        return "0+unknown"


def command_types(
    *, plugins: Collection[str], allow_shell: bool, restrict_to: Collection[str] = ()
) -> tuple[str, ...]:
    """The command types the node advertises: built-ins (``shell`` only if allowed) and plugins,
    narrowed to ``restrict_to`` if given. ValueError names types that cannot be offered."""
    available = [t for t in BUILTIN_TYPES if t != "shell" or allow_shell]
    available += sorted(plugins)
    if not restrict_to:
        return tuple(available)
    missing = [t for t in restrict_to if t not in available]
    if missing:
        hint = " (shell also needs --allow-shell)" if "shell" in missing else ""
        raise ValueError(
            f"--task-types: not available on this node: {', '.join(missing)}{hint}; "
            f"available: {', '.join(available)}"
        )
    return tuple(t for t in available if t in restrict_to)


def make_channel(conn: ConnectionSettings) -> grpc.aio.Channel:
    """The channel to jobqd; its own reconnect backoff is kept short, the stream loop paces."""
    options: list[tuple[str, int | str]] = [
        ("grpc.initial_reconnect_backoff_ms", 100),
        ("grpc.min_reconnect_backoff_ms", 100),
        ("grpc.max_reconnect_backoff_ms", int(conn.backoff.cap_s * 1000)),
        ("grpc.max_receive_message_length", 64 * 1024 * 1024),
        ("grpc.enable_retries", 0),
        ("grpc.primary_user_agent", f"jobq-node/{node_version()}"),
    ]
    if conn.keepalive_s > 0:
        options += [
            ("grpc.keepalive_time_ms", int(conn.keepalive_s * 1000)),
            ("grpc.keepalive_timeout_ms", int(conn.keepalive_timeout_s * 1000)),
            ("grpc.http2.max_pings_without_data", 0),
        ]
    if conn.tls or conn.tls_ca is not None or conn.tls_cert is not None:
        credentials = grpc.ssl_channel_credentials(
            root_certificates=conn.tls_ca.read_bytes() if conn.tls_ca is not None else None,
            private_key=conn.tls_key.read_bytes() if conn.tls_key is not None else None,
            certificate_chain=conn.tls_cert.read_bytes() if conn.tls_cert is not None else None,
        )
        return grpc.aio.secure_channel(conn.server, credentials, options=options)
    return grpc.aio.insecure_channel(conn.server, options=options)


def isolation(ex: ExecutionSettings) -> tuple[RunAs | None, str | None]:
    """The user commands run as and the prlimit to apply limits with, checked: raises ValueError
    when the node cannot do what it was configured to (so it refuses to start, not every task)."""
    run_as = resolve_run_as(ex.run_as)
    if run_as is not None and (blocked := unreachable_parent(ex.work_dir, run_as)) is not None:
        raise ValueError(
            f"--run-as {ex.run_as}: {run_as.name} cannot reach the work dir {ex.work_dir} "
            f"({blocked} is not searchable for it); use a --work-dir it can reach, e.g. under /var/lib"
        )
    prlimit = find_prlimit() if ex.limits.may_limit else None
    if ex.limits.may_limit and prlimit is None:
        raise ValueError(
            "resource limits need util-linux prlimit, which is not on PATH: install util-linux, "
            "or start with --memory-limit off and no --rlimit"
        )
    return run_as, prlimit


def install_child_watcher() -> None:
    """Python 3.11 watches children with one thread per process; use pidfds where possible.
    (3.12+ does so by itself.)"""
    if sys.version_info >= (3, 12):
        return
    try:
        os.close(os.pidfd_open(os.getpid()))
    except (AttributeError, OSError):
        return  # old kernel or seccomp: keep the thread-based watcher
    watcher = asyncio.PidfdChildWatcher()
    watcher.attach_loop(asyncio.get_running_loop())
    asyncio.set_child_watcher(watcher)


class NodeService:
    """The running jobq-node."""

    def __init__(self, settings: NodeSettings, *, plugins: Mapping[str, CommandPlugin]) -> None:
        self._settings = settings
        self._plugins = dict(plugins)
        self._types = command_types(
            plugins=list(plugins),
            allow_shell=settings.execution.allow_shell,
            restrict_to=settings.execution.task_types,
        )
        self._stop = asyncio.Event()
        self._node: Node | None = None

    def request_stop(self) -> None:
        """First call: graceful stop. Later calls: kill what is still running, now."""
        if not self._stop.is_set():
            log.info("stopping: no new work; aborting running attempts")
            self._stop.set()
        elif self._node is not None:
            log.warning("stopping now: killing running attempts")
            self._node.kill_all()

    async def run(self) -> int:
        """Run until stopped; the exit code (0, or 1 if a part of the node failed)."""
        s = self._settings
        structlog.contextvars.bind_contextvars(node=s.name)
        install_child_watcher()
        run_as, prlimit = isolation(s.execution)
        s.execution.work_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        if run_as is not None:  # its attempt directories inside must be reachable, not listable
            s.execution.work_dir.chmod(0o711)
        allowlist = Allowlist.of(s.execution.allow_commands)
        if not allowlist.restricts and "exec" in self._types:
            log.warning("no --allow-command given: exec may run any program", user=_user(run_as))
        if run_as is None and os.geteuid() == 0 and PROCESS_TYPES.intersection(self._types):
            log.warning("running as root without --run-as: commands run as root")
        out = s.output
        outbox = Outbox(
            log_budget_bytes=out.buffer_bytes, max_updates=out.max_buffered_updates, hold_s=out.hold_s
        )
        flusher = Flusher(interval_s=out.flush_interval_s)
        ctx = AttemptContext(
            node_name=s.name,
            work_root=s.execution.work_dir,
            keep_work_dirs=s.execution.keep_work_dirs,
            grace_s=s.execution.grace_period_s,
            allowlist=allowlist,
            base_env=scrubbed_environment(os.environ, s.execution.env_passthrough),
            plugins=self._plugins,
            outbox=outbox,
            flusher=flusher,
            max_line_bytes=out.max_line_bytes,
            batch_lines=out.batch_lines,
            batch_bytes=out.batch_bytes,
            run_as=run_as,
            limits=s.execution.limits,
            prlimit=prlimit,
        )
        node = self._node = Node(
            ctx=ctx, slots=s.slots, command_types=self._types, shell_allowed=s.execution.allow_shell
        )
        conn = s.connection
        channel = make_channel(conn)
        metadata = [("authorization", f"Bearer {conn.token}")] if conn.token else []
        stream = Stream(
            channel=channel,
            metadata=metadata,
            hello=lambda: self._hello(node),
            node=node,
            outbox=outbox,
            heartbeat_s=conn.heartbeat_s,
            connect_timeout_s=conn.connect_timeout_s,
            backoff=conn.backoff,
        )
        log.info(
            "jobq-node starting",
            server=conn.server,
            slots=s.slots,
            command_types=list(self._types),
            work_dir=str(s.execution.work_dir),
            user=_user(run_as),
            memory_limit=s.execution.limits.memory,
            rlimits=dict(s.execution.limits.fixed),
            version=node_version(),
        )
        background = [
            asyncio.create_task(flusher.run(), name="log-flusher"),
            asyncio.create_task(stream.run(), name="stream"),
        ]
        stop_waiter = asyncio.create_task(self._stop.wait(), name="stop-waiter")
        exit_code = 0
        try:
            done, _ = await asyncio.wait([*background, stop_waiter], return_when=asyncio.FIRST_COMPLETED)
            for task in background:
                if task in done:
                    exit_code = 1
                    err = None if task.cancelled() else task.exception()
                    log.error("background task ended; stopping", task=task.get_name(), error=repr(err))
            await self._shutdown(node, outbox, stream)
        finally:
            stop_waiter.cancel()
            for task in background:
                task.cancel()
            await asyncio.wait([*background, stop_waiter])
            await node.cancel_all()
            await channel.close(grace=None)
        log.info("jobq-node stopped", exit_code=exit_code, dropped_log_lines=outbox.dropped_lines)
        return exit_code

    async def _shutdown(self, node: Node, outbox: Outbox, stream: Stream) -> None:
        s = self._settings
        grace_s = s.execution.grace_period_s
        node.stop_accepting()
        if node.running:
            log.info("aborting running attempts", count=len(node.running), grace_s=grace_s)
            # grace, plus time for the reports and work-dir clean-up; then force
            if not await node.abort_all(grace_s=grace_s, reason="node shutting down", timeout_s=grace_s + 5):
                node.kill_all()
                await node.abort_all(grace_s=0, reason="node shutting down", timeout_s=5)
        if outbox.connected and not outbox.idle:
            try:
                async with asyncio.timeout(s.shutdown_flush_s):
                    await outbox.wait_idle()
            except TimeoutError:
                log.warning("results not delivered before exit", queued=len(outbox))
        elif not outbox.idle:
            log.warning("jobqd unreachable: results not delivered", queued=len(outbox))
        await stream.close()

    def _hello(self, node: Node) -> pb.Hello:
        s = self._settings
        return pb.Hello(
            name=s.name,
            labels=dict(s.labels),
            capacity=dict(s.capacity),
            command_types=list(self._types),
            running=node.in_flight(),
            version=node_version(),
            batches=True,
        )


def _user(run_as: RunAs | None) -> str:
    return describe_user(os.geteuid() if run_as is None else run_as.uid)
