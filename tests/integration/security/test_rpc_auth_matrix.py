"""Every RPC of every service, enumerated from the generated descriptors (a new RPC is checked the
moment it exists): no token and a made-up token → UNAUTHENTICATED; a token of a role that may not
call it → PERMISSION_DENIED; a role that may → past the guard. Health and reflection stay open."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from tests.integration.security.conftest import Secured
from tests.integration.security.support import all_methods, call, jobq_services

#: What the security design (docs/security.md) promises, written out independently of the code.
ADMIN_ONLY = {
    "jobq.v1.QueueService": {"CreateQueue", "UpdateQueue", "DeleteQueue", "HoldQueue", "ReleaseQueue"},
    "jobq.v1.NodeAdminService": {"DrainNode", "ResumeNode", "ClearBlocklist"},
}
NODE_ONLY = {"jobq.v1.NodeService": {"Connect"}}
KNOWN_SERVICES = {
    "jobq.v1.JobService",
    "jobq.v1.QueueService",
    "jobq.v1.NodeService",
    "jobq.v1.NodeAdminService",
}
TOKEN_OF_ROLE = {"client": "alice", "node": "n1", "admin": "root"}


def allowed(service: ServiceDescriptor, method: MethodDescriptor) -> set[str]:
    if method.name in NODE_ONLY.get(service.full_name, ()):
        return {"node"}
    if method.name in ADMIN_ONLY.get(service.full_name, ()):
        return {"admin"}
    return {"client", "admin"}


METHODS = all_methods()
IDS = [f"{s.name}.{m.name}" for s, m in METHODS]


@pytest.fixture(scope="module")
def channel(secured_shared: Secured) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(secured_shared.jobqd.address) as ch:
        yield ch


def test_the_expectations_cover_every_service() -> None:
    names = {s.full_name for s in jobq_services()}
    assert names == KNOWN_SERVICES, "a service was added or removed: write down who may call it above"
    assert len(METHODS) >= 32


@pytest.mark.parametrize(("service", "method"), METHODS, ids=IDS)
def test_no_token_is_unauthenticated(
    channel: grpc.Channel, service: ServiceDescriptor, method: MethodDescriptor
) -> None:
    assert call(channel, service, method, token=None) == grpc.StatusCode.UNAUTHENTICATED


@pytest.mark.parametrize(("service", "method"), METHODS, ids=IDS)
def test_a_made_up_token_is_unauthenticated(
    channel: grpc.Channel, service: ServiceDescriptor, method: MethodDescriptor
) -> None:
    fake = "jobq_" + "A" * 43
    assert call(channel, service, method, token=fake) == grpc.StatusCode.UNAUTHENTICATED


@pytest.mark.parametrize(("service", "method"), METHODS, ids=IDS)
def test_a_token_of_the_wrong_role_is_permission_denied(
    channel: grpc.Channel, secured_shared: Secured, service: ServiceDescriptor, method: MethodDescriptor
) -> None:
    wrong = sorted(set(TOKEN_OF_ROLE) - allowed(service, method))
    assert wrong
    for role in wrong:
        token = secured_shared.tokens[TOKEN_OF_ROLE[role]]
        code = call(channel, service, method, token=token)
        assert code == grpc.StatusCode.PERMISSION_DENIED, f"{role} token: {code}"


@pytest.mark.parametrize(("service", "method"), METHODS, ids=IDS)
def test_a_token_of_an_allowed_role_gets_past_the_guard(
    channel: grpc.Channel, secured_shared: Secured, service: ServiceDescriptor, method: MethodDescriptor
) -> None:
    for role in sorted(allowed(service, method)):
        token = secured_shared.tokens[TOKEN_OF_ROLE[role]]
        code = call(channel, service, method, token=token)
        # an empty request is usually invalid, a watch runs into its deadline: both are fine here
        assert code not in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED), role


def test_other_authorization_schemes_are_not_tokens(channel: grpc.Channel, secured_shared: Secured) -> None:
    from jobq.v1 import job_service_pb2 as js

    list_jobs = channel.unary_unary(
        "/jobq.v1.JobService/ListJobs",
        request_serializer=js.ListJobsRequest.SerializeToString,
        response_deserializer=js.ListJobsResponse.FromString,
    )
    for value in (f"Basic {secured_shared.tokens['root']}", secured_shared.tokens["root"], "Bearer"):
        with pytest.raises(grpc.RpcError) as err:
            list_jobs(js.ListJobsRequest(), metadata=[("authorization", value)], timeout=5)
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert secured_shared.tokens["root"] not in (err.value.details() or "")
    # the scheme is case-insensitive, as in HTTP
    list_jobs(js.ListJobsRequest(), metadata=[("authorization", f"bearer {secured_shared.tokens['root']}")])


def test_health_and_reflection_need_no_token(channel: grpc.Channel, secured_shared: Secured) -> None:
    health = health_pb2_grpc.HealthStub(channel)
    assert (
        health.Check(health_pb2.HealthCheckRequest(), timeout=5).status
        == health_pb2.HealthCheckResponse.SERVING
    )
    refl = reflection_pb2_grpc.ServerReflectionStub(channel)
    [answer] = list(
        refl.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
    )
    assert "jobq.v1.JobService" in {s.name for s in answer.list_services_response.service}


def test_no_token_ever_reaches_the_log(secured_shared: Secured) -> None:
    text = secured_shared.jobqd.log_path.read_text()
    for token in secured_shared.tokens.values():
        assert token not in text
        assert token[5:] not in text
