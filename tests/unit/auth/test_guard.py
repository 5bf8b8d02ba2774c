"""The guard in front of a real grpc.aio server (in process, port 0) with a JobService whose submits
wait until the test lets them go: the overload bounds, read-only mode and the caller's identity."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc
import grpc.aio
import pytest
from jobq.v1 import job_service_pb2 as js
from jobq.v1 import job_service_pb2_grpc as js_grpc
from jobq.v1 import types_pb2 as pb

from jobqd.api.server import add_wrapped
from jobqd.auth import identity
from jobqd.auth.guard import Guard, GuardLimits
from jobqd.auth.identity import Identity, Role
from jobqd.auth.tokens import TokenBook, TokenHash, digest

RE = grpc.StatusCode.RESOURCE_EXHAUSTED


class SlowJobs(js_grpc.JobServiceServicer):
    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.entered = 0
        self.callers: list[Identity | None] = []

    async def SubmitJob(self, request: js.SubmitJobRequest, context: Any) -> js.SubmitJobResponse:
        self.entered += 1
        self.callers.append(identity.current())
        await self.release.wait()
        return js.SubmitJobResponse(created=True)

    async def ListJobs(self, request: js.ListJobsRequest, context: Any) -> js.ListJobsResponse:
        self.callers.append(identity.current())
        return js.ListJobsResponse()

    async def WatchEvents(
        self, request: js.WatchEventsRequest, context: Any
    ) -> AsyncIterator[js.WatchEventsResponse]:
        yield js.WatchEventsResponse()
        await asyncio.Event().wait()


async def serve(guard: Guard) -> tuple[grpc.aio.Server, SlowJobs, grpc.aio.Channel]:
    jobs = SlowJobs()
    server = grpc.aio.server()
    add_wrapped(server, js_grpc.add_JobServiceServicer_to_server, jobs, [guard.wrap])
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, jobs, grpc.aio.insecure_channel(f"127.0.0.1:{port}")


async def until(cond: Any) -> None:
    for _ in range(500):
        if cond():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition never held")


async def test_submits_in_flight_are_bounded_by_count_and_bytes() -> None:
    guard = Guard(tokens=None, limits=GuardLimits(max_inflight_submits=2, max_inflight_submit_bytes=10_000))
    server, jobs, ch = await serve(guard)
    try:
        stub = js_grpc.JobServiceStub(ch)
        first = asyncio.ensure_future(stub.SubmitJob(js.SubmitJobRequest(request_id="a")))
        await until(lambda: jobs.entered == 1 and guard.submits_in_flight == 1)
        big = js.SubmitJobRequest(spec=pb.JobSpec(name="x" * 20_000))
        with pytest.raises(grpc.aio.AioRpcError) as err:  # over the byte bound with another in flight
            await stub.SubmitJob(big)
        assert err.value.code() == RE and "in flight" in (err.value.details() or "")
        third = asyncio.ensure_future(stub.SubmitJob(js.SubmitJobRequest(request_id="c")))
        await until(lambda: jobs.entered == 2)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.SubmitJob(js.SubmitJobRequest(request_id="d"))
        assert err.value.code() == RE
        jobs.release.set()
        await asyncio.gather(first, third)
        assert guard.submits_in_flight == 0 and guard.submit_bytes_in_flight == 0
        # with nothing in flight, one request larger than the byte bound is accepted
        assert (await stub.SubmitJob(big)).created
    finally:
        await ch.close()
        await server.stop(0)


async def test_streams_per_identity_are_bounded() -> None:
    guard = Guard(tokens=None, limits=GuardLimits(max_streams_per_identity=2))
    server, _, ch = await serve(guard)
    try:
        stub = js_grpc.JobServiceStub(ch)
        open_ = [stub.WatchEvents(js.WatchEventsRequest()) for _ in range(2)]
        for s in open_:
            await s.read()
        third = stub.WatchEvents(js.WatchEventsRequest())
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await third.read()
        assert err.value.code() == RE and "streams open" in (err.value.details() or "")
        open_[0].cancel()
        await until(lambda: guard.open_streams == 1)
        again = stub.WatchEvents(js.WatchEventsRequest())
        await again.read()
        again.cancel()
        open_[1].cancel()
    finally:
        await ch.close()
        await server.stop(0)


async def test_read_only_refuses_writes_but_not_reads() -> None:
    guard = Guard(tokens=None)
    server, jobs, ch = await serve(guard)
    try:
        guard.read_only = "the store is read-only after a failed write"
        stub = js_grpc.JobServiceStub(ch)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.SubmitJob(js.SubmitJobRequest())
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE and "read-only" in (err.value.details() or "")
        assert jobs.entered == 0  # refused before the handler could touch anything
        await stub.ListJobs(js.ListJobsRequest())
    finally:
        await ch.close()
        await server.stop(0)


async def test_the_handler_sees_the_callers_identity() -> None:
    token = "jobq_" + "t" * 43

    async def load() -> list[TokenHash]:
        return [TokenHash("alice", Role.CLIENT, digest(token))]

    book = TokenBook(load)
    await book.reload()
    guard = Guard(tokens=book)
    server, jobs, ch = await serve(guard)
    try:
        stub = js_grpc.JobServiceStub(ch)
        await stub.ListJobs(js.ListJobsRequest(), metadata=[("authorization", f"Bearer {token}")])
        assert jobs.callers == [Identity("alice", Role.CLIENT)]
        assert identity.current() is None  # nothing leaks into the test's own context
    finally:
        await ch.close()
        await server.stop(0)
