"""Building the grpc.aio server: servicers, health, reflection, message limits, interceptors, TLS."""

from __future__ import annotations

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from jobq.v1 import job_service_pb2, node_service_pb2, queue_service_pb2
from jobq.v1 import job_service_pb2_grpc as js_grpc
from jobq.v1 import node_service_pb2_grpc as ns_grpc
from jobq.v1 import queue_service_pb2_grpc as qs_grpc

SERVICE_NAMES = (
    job_service_pb2.DESCRIPTOR.services_by_name["JobService"].full_name,
    queue_service_pb2.DESCRIPTOR.services_by_name["QueueService"].full_name,
    node_service_pb2.DESCRIPTOR.services_by_name["NodeService"].full_name,
    node_service_pb2.DESCRIPTOR.services_by_name["NodeAdminService"].full_name,
)


def build_server(
    *,
    jobs: js_grpc.JobServiceServicer,
    queues: qs_grpc.QueueServiceServicer,
    node_admin: ns_grpc.NodeAdminServiceServicer,
    node_service: ns_grpc.NodeServiceServicer | None,
    max_message_bytes: int,
    interceptors: list[grpc.aio.ServerInterceptor] | None = None,
) -> tuple[grpc.aio.Server, health.aio.HealthServicer]:
    server = grpc.aio.server(
        interceptors=interceptors or [],
        options=[
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.max_send_message_length", max_message_bytes),
            # nodes keep one stream open for days; keepalive finds dead peers behind NATs
            ("grpc.keepalive_time_ms", 30_000),
            ("grpc.keepalive_timeout_ms", 10_000),
            ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.so_reuseport", 0),
        ],
    )
    js_grpc.add_JobServiceServicer_to_server(jobs, server)
    qs_grpc.add_QueueServiceServicer_to_server(queues, server)
    ns_grpc.add_NodeAdminServiceServicer_to_server(node_admin, server)
    if node_service is not None:
        ns_grpc.add_NodeServiceServicer_to_server(node_service, server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (*SERVICE_NAMES, health.SERVICE_NAME, reflection.SERVICE_NAME), server
    )
    return server, health_servicer


def server_credentials(*, cert: bytes, key: bytes, client_ca: bytes | None) -> grpc.ServerCredentials:
    """TLS; with `client_ca`, mutual TLS: a client without a certificate signed by it is refused
    during the handshake, before any RPC (tokens still decide what it may do)."""
    return grpc.ssl_server_credentials(
        [(key, cert)], root_certificates=client_ca, require_client_auth=client_ca is not None
    )


def bind(server: grpc.aio.Server, listen: str, credentials: grpc.ServerCredentials | None) -> int:
    """Listen on `listen` (plaintext without credentials); the bound port (0 = failed)."""
    if credentials is None:
        return server.add_insecure_port(listen)
    return server.add_secure_port(listen, credentials)


async def set_serving(h: health.aio.HealthServicer, serving: bool) -> None:
    status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
    for name in ("", *SERVICE_NAMES):
        await h.set(name, status)
