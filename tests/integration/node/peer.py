"""A scripted stand-in for jobqd's side of NodeService (a test double: jobqd's real dispatch is
tested elsewhere), and the real jobq-node, run as a subprocess against it.

The peer is a real grpc.aio server on 127.0.0.1 (port 0); each Connect becomes a
:class:`PeerSession` that records everything the node sends and lets the test push Welcome,
Assign and Abort, drop the stream, or read slowly. The node is the installed ``jobq-node`` console
script in a subprocess, with JSON logs captured to a file.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
from google.protobuf import struct_pb2
from jobq.v1 import node_service_pb2 as pb
from jobq.v1 import node_service_pb2_grpc as pb_grpc
from jobq.v1 import types_pb2

NODE_BIN = Path(sys.executable).with_name("jobq-node")
WAIT_S = 15.0


async def eventually(check: Callable[[], Any], *, timeout: float = WAIT_S, what: str = "condition") -> Any:
    """Poll ``check`` until it returns something truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.02)


def command(type_: str, **params: Any) -> types_pb2.Command:
    struct = struct_pb2.Struct()
    struct.update(params)
    return types_pb2.Command(type=type_, params=struct)


def exec_(*argv: str, **params: Any) -> types_pb2.Command:
    return command("exec", argv=list(argv), **params)


class PeerSession:
    """One Connect stream as jobqd would see it."""

    def __init__(self) -> None:
        self.received: list[pb.NodeMessage] = []
        self.outgoing: asyncio.Queue[pb.ServerMessage | None] = asyncio.Queue()
        self.read_delay_s = 0.0
        self.ended = False
        #: NodeBatch messages received (their parts are in `received`)
        self.batches = 0

    # -- pushing -------------------------------------------------------------------------------

    def send(self, message: pb.ServerMessage) -> None:
        self.outgoing.put_nowait(message)

    def welcome(
        self, *, heartbeat_ms: int = 5000, node_timeout_ms: int = 30000, batches: bool = False
    ) -> None:
        welcome = pb.Welcome(
            heartbeat_interval_ms=heartbeat_ms, node_timeout_ms=node_timeout_ms, batches=batches
        )
        self.send(pb.ServerMessage(welcome=welcome))

    def assign(
        self,
        task_id: str,
        *commands: types_pb2.Command,
        attempt: int = 1,
        job_id: str = "job1",
        resources: dict[str, str] | None = None,
    ) -> None:
        assign = pb.Assign(
            task_id=task_id, attempt=attempt, job_id=job_id, commands=commands, resources=resources or {}
        )
        self.send(pb.ServerMessage(assign=assign))

    def abort(self, task_id: str, *, attempt: int = 1, grace_ms: int = 0, reason: str = "test") -> None:
        self.send(
            pb.ServerMessage(
                abort=pb.Abort(task_id=task_id, attempt=attempt, reason=reason, grace_ms=grace_ms)
            )
        )

    def drop(self) -> None:
        """End the stream from jobqd's side."""
        self.outgoing.put_nowait(None)

    # -- looking -------------------------------------------------------------------------------

    @property
    def hello(self) -> pb.Hello:
        assert self.received, "nothing received"
        assert self.received[0].WhichOneof("msg") == "hello", "first message is not Hello"
        return self.received[0].hello

    def updates(self, task_id: str, attempt: int = 1) -> list[pb.TaskUpdate]:
        return [
            m.update
            for m in list(self.received)
            if m.WhichOneof("msg") == "update" and m.update.task_id == task_id and m.update.attempt == attempt
        ]

    def kinds(self, task_id: str, attempt: int = 1) -> list[str]:
        return [
            pb.UpdateKind.Name(u.kind).removeprefix("UPDATE_KIND_") for u in self.updates(task_id, attempt)
        ]

    def log_chunks(self, task_id: str, attempt: int = 1) -> list[pb.LogChunk]:
        return [
            m.log
            for m in list(self.received)
            if m.WhichOneof("msg") == "log" and m.log.task_id == task_id and m.log.attempt == attempt
        ]

    def log_lines(self, task_id: str, attempt: int = 1) -> list[str]:
        return [line for chunk in self.log_chunks(task_id, attempt) for line in chunk.lines]

    def heartbeats(self) -> list[pb.Heartbeat]:
        return [m.heartbeat for m in list(self.received) if m.WhichOneof("msg") == "heartbeat"]

    async def final(self, task_id: str, attempt: int = 1, *, timeout: float = WAIT_S) -> pb.TaskUpdate:
        """The terminal update of an attempt, once it arrived."""
        terminal = {pb.UPDATE_KIND_COMPLETED, pb.UPDATE_KIND_FAILED, pb.UPDATE_KIND_ABORTED}

        def find() -> pb.TaskUpdate | None:
            return next((u for u in self.updates(task_id, attempt) if u.kind in terminal), None)

        result: pb.TaskUpdate = await eventually(
            find, timeout=timeout, what=f"terminal update of {task_id}#{attempt}"
        )
        return result

    async def started(self, task_id: str, attempt: int = 1) -> None:
        await eventually(
            lambda: pb.UPDATE_KIND_STARTED in [u.kind for u in self.updates(task_id, attempt)],
            what=f"STARTED of {task_id}#{attempt}",
        )


class FakeJobqd(pb_grpc.NodeServiceServicer):
    """A NodeService that does only what the test tells it to."""

    def __init__(self) -> None:
        self.sessions: list[PeerSession] = []
        self.port = 0
        self._server: grpc.aio.Server | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self) -> None:
        """Listen (again, on the same port after a :meth:`stop`)."""
        server = grpc.aio.server()
        pb_grpc.add_NodeServiceServicer_to_server(self, server)
        port = server.add_insecure_port(f"127.0.0.1:{self.port}")
        assert port, "could not bind"
        self.port = port
        await server.start()
        self._server = server

    async def stop(self) -> None:
        """Go away as a crashing jobqd would: streams are cut, connections refused."""
        if self._server is not None:
            for session in self.sessions:
                session.drop()
            await self._server.stop(grace=None)
            self._server = None

    async def session(self, index: int = 0, *, timeout: float = WAIT_S) -> PeerSession:
        """The ``index``-th stream, once the node opened it and sent Hello."""
        await eventually(
            lambda: len(self.sessions) > index and self.sessions[index].received,
            timeout=timeout,
            what=f"Connect stream #{index + 1} with Hello",
        )
        return self.sessions[index]

    async def Connect(  # type: ignore[override]
        self, request_iterator: Any, context: grpc.aio.ServicerContext[pb.NodeMessage, pb.ServerMessage]
    ) -> None:
        session = PeerSession()
        self.sessions.append(session)
        reader = asyncio.create_task(self._read(context, session))
        try:
            while True:
                message = await session.outgoing.get()
                if message is None:
                    return
                await context.write(message)
        finally:
            session.ended = True
            reader.cancel()

    @staticmethod
    async def _read(
        context: grpc.aio.ServicerContext[pb.NodeMessage, pb.ServerMessage], session: PeerSession
    ) -> None:
        while True:
            message = await context.read()
            if message is grpc.aio.EOF:
                return
            assert isinstance(message, pb.NodeMessage)
            if message.HasField("batch"):  # counts as its parts
                session.batches += 1
                session.received.extend(message.batch.messages)
            else:
                session.received.append(message)
            if session.read_delay_s:
                await asyncio.sleep(session.read_delay_s)  # simulate a slow jobqd


class NodeProcess:
    """A running ``jobq-node``."""

    def __init__(self, proc: asyncio.subprocess.Process, log_path: Path, work_dir: Path) -> None:
        self.proc = proc
        self.log_path = log_path
        self.work_dir = work_dir

    @property
    def pid(self) -> int:
        return self.proc.pid

    def logs(self) -> list[dict[str, Any]]:
        out = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                out.append({"event": line})
        return out

    async def wait_log(self, event: str, *, timeout: float = WAIT_S, **fields: Any) -> dict[str, Any]:
        def find() -> dict[str, Any] | None:
            for entry in self.logs():
                if entry.get("event") == event and all(entry.get(k) == v for k, v in fields.items()):
                    return entry
            return None

        found: dict[str, Any] = await eventually(find, timeout=timeout, what=f"node log {event!r} {fields}")
        return found

    def rss_bytes(self) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise AssertionError("no VmRSS")

    async def exited(self, *, timeout: float = WAIT_S) -> int:
        """Wait for the node to exit on its own; its exit code."""
        async with asyncio.timeout(timeout):
            return await self.proc.wait()

    async def stop(self, *, timeout: float = 30.0) -> int:
        """SIGTERM and wait for the exit code."""
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(timeout):
            return await self.proc.wait()


def pid_alive(pid: int) -> bool:
    """Whether ``pid`` is a live (non-zombie) process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


StartNode = Callable[..., Awaitable[NodeProcess]]
