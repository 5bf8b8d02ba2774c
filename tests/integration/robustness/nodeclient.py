"""A hand-written node for NodeService.Connect against a real jobqd: the test decides every message.

It speaks the protocol only as far as the test tells it to — it sends nothing on its own except
heartbeats while `beating` is set — so a test can send messages out of order, for unknown tasks or
wrong attempts, stop heartbeating and reading while keeping the stream (and its TCP connection)
open, or come back with a Hello that lists an attempt jobqd has meanwhile given to another node.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator

import grpc
from jobq.v1 import node_service_pb2 as ns
from jobq.v1 import node_service_pb2_grpc as ns_grpc
from jobq.v1 import types_pb2 as pb

WAIT_S = 20.0


class NodeStream:
    """One Connect call: a sending queue, a reader thread, and an optional heartbeat thread."""

    def __init__(
        self,
        channel: grpc.Channel,
        first: ns.NodeMessage | None,
        *,
        heartbeat_s: float,
        on_message: Callable[[NodeStream, ns.ServerMessage], None] | None = None,
    ) -> None:
        self._on_message = on_message
        self._out: queue.Queue[ns.NodeMessage | None] = queue.Queue()
        self._cond = threading.Condition()
        self.received: list[ns.ServerMessage] = []
        #: ServerBatch messages received (their parts are in `received`)
        self.batches = 0
        self.error: grpc.RpcError | None = None
        self.ended = threading.Event()
        #: cleared to stop reading (messages stay unread in the transport) — see `stall`
        self.reading = threading.Event()
        self.reading.set()
        #: cleared to stop heartbeats
        self.beating = threading.Event()
        self._heartbeat_s = heartbeat_s
        self._closed = False
        if first is not None:
            self._out.put(first)
        self.call = ns_grpc.NodeServiceStub(channel).Connect(self._requests())
        self._reader = threading.Thread(target=self._read, daemon=True, name="fake-node-reader")
        self._reader.start()
        self._beater = threading.Thread(target=self._beat, daemon=True, name="fake-node-beater")
        self._beater.start()

    def _requests(self) -> Iterator[ns.NodeMessage]:
        while True:
            msg = self._out.get()
            if msg is None:
                return
            yield msg

    def _read(self) -> None:
        try:
            for msg in self.call:
                # a ServerBatch (only sent to a node whose Hello says batches) counts as its parts
                parts = list(msg.batch.messages) if msg.HasField("batch") else [msg]
                with self._cond:
                    self.batches += msg.HasField("batch")
                    self.received.extend(parts)
                    self._cond.notify_all()
                if self._on_message is not None:
                    for part in parts:
                        self._on_message(self, part)
                self.reading.wait()
        except grpc.RpcError as err:
            self.error = err
        finally:
            self.ended.set()
            with self._cond:
                self._cond.notify_all()

    def _beat(self) -> None:
        while not self._closed and not self.ended.is_set():
            if self.beating.is_set():
                self._out.put(ns.NodeMessage(heartbeat=ns.Heartbeat()))
            time.sleep(self._heartbeat_s)

    # -- sending ----------------------------------------------------------------------------------

    def send(self, msg: ns.NodeMessage) -> None:
        self._out.put(msg)

    def update(
        self,
        task_id: str,
        attempt: int,
        kind: int,
        *,
        progress: int = 0,
        exit_code: int | None = None,
        message: str = "",
    ) -> None:
        up = ns.TaskUpdate(task_id=task_id, attempt=attempt, kind=kind, progress=progress, message=message)
        if exit_code is not None:
            up.exit_code = exit_code
        self.send(ns.NodeMessage(update=up))

    def log(self, task_id: str, attempt: int, lines: Iterable[str]) -> None:
        self.send(ns.NodeMessage(log=ns.LogChunk(task_id=task_id, attempt=attempt, lines=list(lines))))

    def stall(self) -> None:
        """Stop heartbeating and reading, but keep the stream and its connection open."""
        self.beating.clear()
        self.reading.clear()

    def close(self) -> None:
        """Half-close (end of the request stream), then cancel."""
        if self._closed:
            return
        self._closed = True
        self.reading.set()
        self._out.put(None)
        if not self.ended.wait(2):
            self.call.cancel()
            self.ended.wait(5)

    # -- receiving --------------------------------------------------------------------------------

    def wait_for(
        self, pred: Callable[[ns.ServerMessage], bool], *, timeout: float = WAIT_S, what: str = ""
    ) -> ns.ServerMessage:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for msg in self.received:
                    if pred(msg):
                        return msg
                left = deadline - time.monotonic()
                if left <= 0 or (self.ended.is_set() and not any(pred(m) for m in self.received)):
                    raise AssertionError(
                        f"no {what or 'matching message'} within {timeout}s "
                        f"(ended={self.ended.is_set()}, error={self.error!r}); got {self.received}"
                    )
                self._cond.wait(min(left, 0.1))

    def welcome(self) -> ns.Welcome:
        return self.wait_for(lambda m: m.HasField("welcome"), what="Welcome").welcome

    def assign(self, *, timeout: float = WAIT_S) -> ns.Assign:
        return self.wait_for(lambda m: m.HasField("assign"), timeout=timeout, what="Assign").assign

    def abort_for(self, task_id: str, attempt: int, *, timeout: float = WAIT_S) -> ns.Abort:
        return self.wait_for(
            lambda m: m.HasField("abort") and m.abort.task_id == task_id and m.abort.attempt == attempt,
            timeout=timeout,
            what=f"Abort({task_id}, {attempt})",
        ).abort

    def aborts(self) -> list[ns.Abort]:
        with self._cond:
            return [m.abort for m in self.received if m.HasField("abort")]

    def assigns(self) -> list[ns.Assign]:
        with self._cond:
            return [m.assign for m in self.received if m.HasField("assign")]


class FakeNode:
    """A node whose every message is written by the test."""

    def __init__(
        self,
        address: str,
        name: str,
        *,
        slots: int = 1,
        command_types: Iterable[str] = ("exec", "noop", "echo", "sleep"),
        labels: dict[str, str] | None = None,
        heartbeat_s: float = 0.25,
        batches: bool = False,
    ) -> None:
        self.address = address
        self.batches = batches
        self.name = name
        self.slots = slots
        self.command_types = list(command_types)
        self.labels = labels or {}
        self.heartbeat_s = heartbeat_s
        self.channel = grpc.insecure_channel(address)
        self.streams: list[NodeStream] = []

    def hello(self, running: Iterable[tuple[str, int]] = ()) -> ns.Hello:
        return ns.Hello(
            name=self.name,
            labels=self.labels,
            capacity={"slots": str(self.slots), "cpu": "64", "memory": "64Gi"},
            command_types=self.command_types,
            running=[pb.RunningAttempt(task_id=t, attempt=a) for t, a in running],
            version="fake-node",
            batches=self.batches,
        )

    def connect(
        self,
        running: Iterable[tuple[str, int]] = (),
        *,
        beat: bool = True,
        on_message: Callable[[NodeStream, ns.ServerMessage], None] | None = None,
    ) -> NodeStream:
        """Open a stream with a Hello (and heartbeats unless `beat` is False); wait for Welcome."""
        stream = NodeStream(
            self.channel,
            ns.NodeMessage(hello=self.hello(running)),
            heartbeat_s=self.heartbeat_s,
            on_message=on_message,
        )
        if beat:
            stream.beating.set()
        self.streams.append(stream)
        stream.welcome()
        return stream

    def raw_stream(self, first: ns.NodeMessage | None) -> NodeStream:
        """A stream whose first message is whatever the test gives (or nothing)."""
        stream = NodeStream(self.channel, first, heartbeat_s=self.heartbeat_s)
        self.streams.append(stream)
        return stream

    def close(self) -> None:
        for s in self.streams:
            with contextlib.suppress(Exception):
                s.close()
        self.channel.close()


def complete_everything(stream: NodeStream, msg: ns.ServerMessage) -> None:
    """`on_message` for a node that finishes every Assign at once and confirms every Abort."""
    if msg.HasField("assign"):
        a = msg.assign
        stream.update(a.task_id, a.attempt, ns.UPDATE_KIND_STARTED)
        stream.log(a.task_id, a.attempt, [f"ran {a.task_id} attempt {a.attempt}"])
        stream.update(a.task_id, a.attempt, ns.UPDATE_KIND_COMPLETED, exit_code=0)
    elif msg.HasField("abort"):
        stream.update(msg.abort.task_id, msg.abort.attempt, ns.UPDATE_KIND_ABORTED, message="aborted")
