"""jobqd.api.decoding: request bytes that do not parse get INVALID_ARGUMENT, not grpc's UNKNOWN.

Runs jobqd's own `build_server` in process with small servicers, with and without the wrapper,
over a real loopback channel.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
import grpc.aio
import pytest
from google.protobuf.message import DecodeError, Message
from jobq.v1 import job_service_pb2 as js
from jobq.v1 import job_service_pb2_grpc as js_grpc
from jobq.v1 import node_service_pb2_grpc as ns_grpc
from jobq.v1 import queue_service_pb2_grpc as qs_grpc
from jobq.v1 import types_pb2 as pb

from jobqd.api.decoding import decode_requests
from jobqd.api.server import Wrap, build_server

#: none of these parses as a GetJobRequest (some do as a WatchEventsRequest: proto3 is lenient)
GARBAGE = [b"\xff\xff\xff", b"\x0a\x03\xff\xfe\xfd", b"\x0a\x10abc", b"\x08"]


class Jobs(js_grpc.JobServiceServicer):
    async def GetJob(self, request: js.GetJobRequest, context: Any) -> js.GetJobResponse:  # type: ignore[override]
        return js.GetJobResponse(job=pb.Job(id=request.job_id))

    async def WatchEvents(  # type: ignore[override]
        self, request: js.WatchEventsRequest, context: Any
    ) -> AsyncIterator[js.WatchEventsResponse]:
        for i in range(3):
            yield js.WatchEventsResponse(event=pb.Event(sequence=request.after_sequence + i))


def _identity(b: bytes) -> bytes:
    return b


def _parses(cls: type[Message], payload: bytes) -> bool:
    try:
        cls.FromString(payload)
    except DecodeError:
        return False
    return True


async def _serve(wraps: list[Wrap]) -> tuple[grpc.aio.Server, str]:
    server, _ = build_server(
        jobs=Jobs(),
        queues=qs_grpc.QueueServiceServicer(),
        node_admin=ns_grpc.NodeAdminServiceServicer(),
        node_service=None,
        max_message_bytes=1 << 20,
        wraps=wraps,
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, f"127.0.0.1:{port}"


@pytest.mark.parametrize("payload", GARBAGE)
async def test_garbage_gets_invalid_argument_and_valid_requests_still_work(payload: bytes) -> None:
    server, address = await _serve([decode_requests])
    try:
        async with grpc.aio.insecure_channel(address) as ch:
            get = ch.unary_unary(
                "/jobq.v1.JobService/GetJob", request_serializer=_identity, response_deserializer=_identity
            )
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await get(payload, timeout=5)
            assert err.value.code() is grpc.StatusCode.INVALID_ARGUMENT
            assert "GetJob" in (err.value.details() or "")

            watch = ch.unary_stream(
                "/jobq.v1.JobService/WatchEvents",
                request_serializer=_identity,
                response_deserializer=_identity,
            )
            if not _parses(js.WatchEventsRequest, payload):
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    async for _ in watch(payload, timeout=5):
                        pass
                assert err.value.code() is grpc.StatusCode.INVALID_ARGUMENT

            stub = js_grpc.JobServiceStub(ch)
            assert (await stub.GetJob(js.GetJobRequest(job_id="abc"), timeout=5)).job.id == "abc"
            seqs = [r.event.sequence async for r in stub.WatchEvents(js.WatchEventsRequest(after_sequence=7))]
            assert seqs == [7, 8, 9]
    finally:
        await server.stop(None)


async def _refusal(wraps: list[Wrap], method: str, payload: bytes) -> grpc.aio.AioRpcError:
    """The error a server built with `wraps` answers `payload`, sent as is to `method`, with."""
    server, address = await _serve(wraps)
    try:
        async with grpc.aio.insecure_channel(address) as ch:
            call = ch.unary_unary(method, request_serializer=_identity, response_deserializer=_identity)
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await call(payload, timeout=5)
            return err.value
    finally:
        await server.stop(None)


async def test_without_the_wrapper_grpc_says_unknown() -> None:
    """Pins why the wrapper exists: grpc's own answer to unparsable bytes."""
    err = await _refusal([], "/jobq.v1.JobService/GetJob", GARBAGE[0])
    assert err.code() is grpc.StatusCode.UNKNOWN


async def test_garbage_to_health_gets_invalid_argument_without_a_token() -> None:
    """Health is not guarded (load balancers carry no token), but it parses like everything else."""
    # a service name that is not UTF-8
    err = await _refusal([], "/grpc.health.v1.Health/Check", b"\x0a\x03\xff\xfe\xfd")
    assert err.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "Check" in (err.details() or "")
