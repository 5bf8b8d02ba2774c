"""TLS and mutual TLS with certificates made by openssl in the test; plaintext to a TLS port fails
cleanly (an error for the client, nothing for the daemon)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
from jobq import Client
from jobq.v1 import job_service_pb2 as js
from jobq.v1 import job_service_pb2_grpc as js_grpc
from jobq.v1 import types_pb2 as pb

from tests.integration.dispatch.test_farm import sh
from tests.integration.security.support import Pki, create_token, make_pki
from tests.support.procs import Jobqd, NodeProc, eventually, open_channel


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def list_jobs(channel: grpc.Channel) -> grpc.StatusCode:
    try:
        js_grpc.JobServiceStub(channel).ListJobs(js.ListJobsRequest(), timeout=5)
    except grpc.RpcError as err:
        return err.code()  # type: ignore[no-any-return]
    return grpc.StatusCode.OK


def run_one_job(channel: grpc.Channel, how: str) -> None:
    """Submit a one-task job and wait until a node completed it."""
    jobs = js_grpc.JobServiceStub(channel)
    spec = pb.JobSpec(name="t", tasks=[pb.TaskSpec(commands=[sh("true")])])
    job = jobs.SubmitJob(js.SubmitJobRequest(spec=spec)).job
    eventually(
        lambda: jobs.GetJob(js.GetJobRequest(job_id=job.id)).job.status == pb.JOB_STATUS_COMPLETED,
        what=f"the job to complete {how}",
    )


def test_tls_serves_clients_and_nodes_and_refuses_plaintext(
    jobqd_factory: Callable[..., Jobqd], pki: Pki, tmp_path: Path, node_factory: Callable[..., NodeProc]
) -> None:
    d = jobqd_factory("--tls-cert", str(pki.server_cert), "--tls-key", str(pki.server_key))
    # the SDK, as users use it
    with Client(d.address, tls_ca=pki.ca) as client:
        assert client.list_jobs().jobs == []
    # plaintext to the TLS port: a prompt, clean error (no hang), and jobqd carries on
    t0 = time.monotonic()
    with grpc.insecure_channel(d.address) as plain:
        assert list_jobs(plain) == grpc.StatusCode.UNAVAILABLE
    assert time.monotonic() - t0 < 5
    # a client that does not trust the server's CA is refused too
    with open_channel(d.address, tls_ca=pki.stranger_cert) as wrong_ca:
        assert list_jobs(wrong_ca) == grpc.StatusCode.UNAVAILABLE
    # a node over TLS (jobq-node --tls-ca) runs a task
    node_factory(d.address, "n1", "--tls-ca", str(pki.ca))
    with open_channel(d.address, tls_ca=pki.ca) as ch:
        run_one_job(ch, "over TLS")
    assert d.proc is not None and d.proc.poll() is None
    assert "Traceback" not in d.log_path.read_text()


def test_mutual_tls_needs_a_client_certificate_from_the_given_ca(
    jobqd_factory: Callable[..., Jobqd], pki: Pki, node_factory: Callable[..., NodeProc]
) -> None:
    d = jobqd_factory(
        "--tls-cert", str(pki.server_cert), "--tls-key", str(pki.server_key), "--tls-client-ca", str(pki.ca)
    )
    with open_channel(d.address, tls_ca=pki.ca, tls_cert=pki.client_cert, tls_key=pki.client_key) as ok:
        assert list_jobs(ok) == grpc.StatusCode.OK
    with open_channel(d.address, tls_ca=pki.ca) as no_cert:
        assert list_jobs(no_cert) == grpc.StatusCode.UNAVAILABLE
    with open_channel(
        d.address, tls_ca=pki.ca, tls_cert=pki.stranger_cert, tls_key=pki.stranger_key
    ) as other:
        assert list_jobs(other) == grpc.StatusCode.UNAVAILABLE
    with grpc.insecure_channel(d.address) as plain:
        assert list_jobs(plain) == grpc.StatusCode.UNAVAILABLE
    # a node presents its certificate (jobq-node --tls-cert/--tls-key) and runs a task
    node_factory(
        d.address,
        "n1",
        "--tls-ca",
        str(pki.ca),
        "--tls-cert",
        str(pki.client_cert),
        "--tls-key",
        str(pki.client_key),
    )
    with open_channel(d.address, tls_ca=pki.ca, tls_cert=pki.client_cert, tls_key=pki.client_key) as ch:
        run_one_job(ch, "with a node on mutual TLS")
    assert d.proc is not None and d.proc.poll() is None


def test_tls_and_tokens_together(tmp_path: Path, pki: Pki) -> None:
    d = Jobqd(tmp_path / "d", extra=("--tls-cert", str(pki.server_cert), "--tls-key", str(pki.server_key)))
    token = create_token(d.data_dir, role="client", name="alice")
    d.start()
    try:
        with open_channel(d.address, tls_ca=pki.ca) as anonymous:
            assert list_jobs(anonymous) == grpc.StatusCode.UNAUTHENTICATED
        with open_channel(d.address, tls_ca=pki.ca, token=token) as alice:
            assert list_jobs(alice) == grpc.StatusCode.OK
    finally:
        d.stop()


def test_half_a_tls_configuration_is_a_usage_error(tmp_path: Path, pki: Pki) -> None:
    d = Jobqd(tmp_path / "d", extra=("--tls-cert", str(pki.server_cert)))
    with pytest.raises(RuntimeError) as err:
        d.start(timeout=15)
    assert "--tls-cert and --tls-key" in str(err.value)
    assert d.proc is not None and d.proc.returncode == 2
