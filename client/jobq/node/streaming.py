"""The node's one stream to jobqd (``NodeService.Connect``), reconnected forever.

Two layers, as for watches: :meth:`Stream.run` reconnects with jittered backoff for as long as the
node lives; :meth:`Stream._session` is one stream: write Hello, then a sender (heartbeats first,
then the outbox in order) and a receiver (Welcome, Assign, Abort) until either side fails.

Nothing a session holds is lost with it: the outbox keeps whatever was not written, attempts keep
running, and the next session's Hello lists them so jobqd can re-adopt them.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Sequence

import grpc
import grpc.aio
import structlog

from jobq.node.backoff import Backoff
from jobq.node.node import Node
from jobq.node.outbox import Outbox
from jobq.v1 import node_service_pb2 as pb
from jobq.v1 import node_service_pb2_grpc as pb_grpc

log = structlog.get_logger(__name__)

MIN_HEARTBEAT_S = 0.05
"""Floor for jobqd's heartbeat interval, so a bad Welcome cannot make the node spin."""

StreamCall = grpc.aio.StreamStreamCall[pb.NodeMessage, pb.ServerMessage]


#: A NodeBatch holds at most this many messages and (about) this many bytes of log text: a burst of
#: results goes out in one write, a flood of log output in writes of bounded size. The log text is
#: what the outbox already counts for each chunk (its cost); updates and heartbeats are small.
BATCH_MESSAGES = 64
BATCH_BYTES = 1024 * 1024


class Stream:
    """Keeps a Connect stream up and moves messages both ways."""

    def __init__(
        self,
        *,
        channel: grpc.aio.Channel,
        metadata: Sequence[tuple[str, str]],
        hello: Callable[[], pb.Hello],
        node: Node,
        outbox: Outbox,
        heartbeat_s: float,
        connect_timeout_s: float,
        backoff: Backoff,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self._stub = pb_grpc.NodeServiceStub(channel)
        self._metadata = tuple(metadata)
        self._hello = hello
        self._node = node
        self._outbox = outbox
        self._default_heartbeat_s = heartbeat_s
        self._heartbeat_s = heartbeat_s
        self._next_heartbeat = 0.0
        self._connect_timeout_s = connect_timeout_s
        self._backoff = backoff
        self._rand = rand
        self._call: StreamCall | None = None
        self._welcomed = False
        self._batches = False
        self._closing = False
        self.sessions = 0
        """Streams opened so far (for diagnostics)."""

    async def run(self) -> None:
        """Forever: connect, run a session, back off, reconnect. Only cancellation ends it."""
        failures = 0
        while not self.is_closing():
            started = time.monotonic()
            try:
                await self._session()
                log.warning("stream closed by jobqd")
            except grpc.aio.AioRpcError as err:
                log.warning("stream lost", code=err.code().name, details=err.details())
            except TimeoutError:
                log.warning("stream lost: jobqd did not accept the stream in time")
            except (grpc.aio.UsageError, grpc.aio.InternalError, asyncio.InvalidStateError) as err:
                log.warning("stream lost", error=repr(err))
            except Exception:
                # A bug, not the network: log it loudly, and keep the node serving.
                log.exception("stream failed")
            finally:
                self._outbox.set_connected(False)
                resent = self._outbox.resend_recent()
                if resent:
                    log.info("results will be sent again after reconnecting", count=resent)
            if self.is_closing():
                return
            # A session that got its Welcome was a success: start the backoff over.
            failures = 1 if self._welcomed else failures + 1
            delay = self._backoff.delay(failures, rand=self._rand())
            log.info(
                "reconnecting",
                in_s=round(delay, 3),
                failures=failures,
                session_s=round(time.monotonic() - started, 3),
            )
            await asyncio.sleep(delay)  # the backoff itself

    def is_closing(self) -> bool:
        """Whether :meth:`close` was called (the run loop then stops reconnecting)."""
        return self._closing

    async def close(self, *, timeout_s: float = 2.0) -> None:
        """Half-close the current stream so jobqd sees a clean end; the run task is cancelled after."""
        self._closing = True
        call = self._call
        if call is None:
            return
        try:
            async with asyncio.timeout(timeout_s):
                await call.done_writing()
        except (TimeoutError, grpc.aio.AioRpcError, grpc.aio.UsageError, asyncio.InvalidStateError):
            pass

    async def _session(self) -> None:
        self._welcomed = False
        self._batches = False  # until this jobqd's Welcome says it reads NodeBatch
        self._heartbeat_s = self._default_heartbeat_s
        call: StreamCall = self._stub.Connect(metadata=self._metadata)
        self._call = call
        self.sessions += 1
        try:
            async with asyncio.timeout(self._connect_timeout_s):
                hello = self._hello()
                await call.write(pb.NodeMessage(hello=hello))
            self._outbox.set_connected(True)
            log.info("connected", running=len(hello.running), queued=len(self._outbox))
            receiver = asyncio.create_task(self._receive(call), name="stream-receiver")
            sender = asyncio.create_task(self._send(call), name="stream-sender")
            try:
                done, _ = await asyncio.wait((receiver, sender), return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in (receiver, sender):
                    task.cancel()
                await asyncio.wait((receiver, sender))
            # Prefer the receiver's error: it carries jobqd's status; the sender's is a consequence.
            for task in (receiver, sender):
                if task in done and not task.cancelled() and (err := task.exception()) is not None:
                    raise err
        finally:
            self._call = None
            call.cancel()

    async def _receive(self, call: StreamCall) -> None:
        while True:
            message = await call.read()
            if message is grpc.aio.EOF:
                return
            assert isinstance(message, pb.ServerMessage)
            kind = message.WhichOneof("msg")
            if kind == "batch":
                for part in message.batch.messages:
                    if not self._on_work(part):
                        log.warning("ignored in a batch from jobqd", kind=part.WhichOneof("msg"))
            elif kind == "welcome":
                self._on_welcome(message.welcome)
            elif not self._on_work(message):
                log.warning("unknown message from jobqd ignored", kind=kind)

    def _on_work(self, message: pb.ServerMessage) -> bool:
        """An Assign or Abort (the only messages a batch may hold); False for anything else."""
        kind = message.WhichOneof("msg")
        if kind == "assign":
            self._node.on_assign(message.assign)
        elif kind == "abort":
            self._node.on_abort(message.abort)
        return kind in ("assign", "abort")

    def _on_welcome(self, welcome: pb.Welcome) -> None:
        self._welcomed = True
        self._batches = welcome.batches
        if welcome.heartbeat_interval_ms > 0:
            self._heartbeat_s = max(MIN_HEARTBEAT_S, welcome.heartbeat_interval_ms / 1000)
            self._next_heartbeat = min(self._next_heartbeat, time.monotonic() + self._heartbeat_s)
            self._outbox.wake()
        log.info(
            "welcomed by jobqd",
            heartbeat_s=self._heartbeat_s,
            node_timeout_s=welcome.node_timeout_ms / 1000 if welcome.node_timeout_ms else None,
        )

    async def _send(self, call: StreamCall) -> None:
        outbox = self._outbox
        self._next_heartbeat = time.monotonic() + self._heartbeat_s
        while True:
            now = time.monotonic()
            if now >= self._next_heartbeat:
                self._next_heartbeat = now + self._heartbeat_s
                beat = pb.Heartbeat(running=self._node.in_flight())
                await call.write(pb.NodeMessage(heartbeat=beat))
                continue
            item = outbox.take()
            if item is None:
                try:
                    async with asyncio.timeout(self._next_heartbeat - now):
                        await outbox.wait_ready()
                except TimeoutError:
                    pass
                continue
            items = [item]
            if self._batches:
                size = item.cost  # not ByteSize(): that would encode every message twice
                while len(items) < BATCH_MESSAGES and size < BATCH_BYTES and (more := outbox.take()):
                    items.append(more)
                    size += more.cost
            message = items[0].message
            if len(items) > 1:
                message = pb.NodeMessage(batch=pb.NodeBatch(messages=[i.message for i in items]))
            try:
                await call.write(message)
            except BaseException:
                for unsent in reversed(items):  # each goes back to the front: keep their order
                    outbox.unsend(unsent)
                raise
            for sent in items:
                outbox.sent(sent)
