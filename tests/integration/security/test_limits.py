"""The overload bounds are wired to the real daemon's flags (their logic: tests/unit/auth)."""

from __future__ import annotations

from collections.abc import Callable

import grpc
import pytest
from jobq.v1 import job_service_pb2 as js

from tests.support.procs import Jobqd


def test_streams_per_identity_flag(jobqd_factory: Callable[..., Jobqd]) -> None:
    d = jobqd_factory("--max-streams-per-identity", "1")
    first = d.jobs.WatchEvents(js.WatchEventsRequest(after_sequence=0), timeout=10)
    next(first)  # open and streaming (the default queue's creation event)
    with pytest.raises(grpc.RpcError) as err:
        next(d.jobs.WatchEvents(js.WatchEventsRequest(after_sequence=0), timeout=10))
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    first.cancel()
