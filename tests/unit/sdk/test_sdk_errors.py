"""One exception per status code, carrying the server's message unchanged."""

from __future__ import annotations

import grpc
import grpc.aio
import pytest
from jobq import errors
from jobq.errors import from_rpc_error


@pytest.mark.parametrize(
    ("code", "cls"),
    [
        (grpc.StatusCode.INVALID_ARGUMENT, errors.InvalidArgument),
        (grpc.StatusCode.OUT_OF_RANGE, errors.InvalidArgument),
        (grpc.StatusCode.NOT_FOUND, errors.NotFound),
        (grpc.StatusCode.FAILED_PRECONDITION, errors.FailedPrecondition),
        (grpc.StatusCode.ALREADY_EXISTS, errors.AlreadyExists),
        (grpc.StatusCode.UNAUTHENTICATED, errors.Unauthenticated),
        (grpc.StatusCode.PERMISSION_DENIED, errors.PermissionDenied),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, errors.ResourceExhausted),
        (grpc.StatusCode.UNAVAILABLE, errors.Unavailable),
        (grpc.StatusCode.DEADLINE_EXCEEDED, errors.DeadlineExceeded),
        (grpc.StatusCode.INTERNAL, errors.InternalError),
        (grpc.StatusCode.UNKNOWN, errors.InternalError),
        (grpc.StatusCode.DATA_LOSS, errors.InternalError),
        (grpc.StatusCode.UNIMPLEMENTED, errors.InternalError),
        (grpc.StatusCode.CANCELLED, errors.JobqError),
        (grpc.StatusCode.ABORTED, errors.JobqError),
    ],
)
def test_each_status_code_maps_to_its_exception(code: grpc.StatusCode, cls: type[errors.JobqError]) -> None:
    err = from_rpc_error(grpc.aio.AioRpcError(code, None, None, details="job 01J is queued"))

    assert type(err) is cls
    assert err.code is code
    assert err.message == "job 01J is queued"
    assert str(err) == f"{code.name}: job 01J is queued"


def test_a_bare_rpc_error_without_status_is_an_internal_error() -> None:
    err = from_rpc_error(grpc.RpcError())

    assert isinstance(err, errors.InternalError)
    assert err.code is grpc.StatusCode.UNKNOWN
    assert err.message  # never empty: the code's own description


def test_every_exception_is_a_jobq_error_with_its_default_code() -> None:
    assert errors.FailedPrecondition("x").code is grpc.StatusCode.FAILED_PRECONDITION
    assert isinstance(errors.NotFound("x"), errors.JobqError)
    assert repr(errors.NotFound("gone")) == "NotFound('gone', code=NOT_FOUND)"
