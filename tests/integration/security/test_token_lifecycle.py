"""Tokens are created and revoked with the CLI while jobqd runs; the daemon follows without a
restart. Only a hash is stored. Without tokens jobqd stays on loopback."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from pathlib import Path

import grpc
import pytest
from jobq.v1 import job_service_pb2 as js
from jobq.v1 import job_service_pb2_grpc as js_grpc

from tests.integration.security.conftest import Secured
from tests.integration.security.support import create_token, jobqd_cli, revoke_token
from tests.support.procs import Jobqd, eventually, open_channel


def list_jobs(address: str, token: str) -> grpc.StatusCode:
    with open_channel(address, token=token) as ch:
        try:
            js_grpc.JobServiceStub(ch).ListJobs(js.ListJobsRequest(), timeout=5)
        except grpc.RpcError as err:
            return err.code()  # type: ignore[no-any-return]
    return grpc.StatusCode.OK


def end_of(stream: Iterable[object]) -> grpc.RpcError:
    """Read `stream` to its end, which must be an error status: that error."""
    with pytest.raises(grpc.RpcError) as ended:
        for _ in stream:
            pass
    return ended.value


def test_a_revoked_token_stops_working_without_a_restart(secured: Secured) -> None:
    address = secured.jobqd.address
    carol = create_token(secured.data_dir, role="client", name="carol")  # while jobqd runs
    assert list_jobs(address, carol) == grpc.StatusCode.OK  # at once: an unknown token triggers a reload
    with open_channel(address, token=carol) as ch:
        watch = js_grpc.JobServiceStub(ch).WatchEvents(js.WatchEventsRequest(after_sequence=-1), timeout=20)
        revoke_token(secured.data_dir, "carol")
        eventually(
            lambda: list_jobs(address, carol) == grpc.StatusCode.UNAUTHENTICATED,
            timeout=5,
            what="the revoked token to be refused",
        )
        # the stream it had open is ended too, with a status that says why
        ended = end_of(watch)
        assert ended.code() == grpc.StatusCode.UNAUTHENTICATED
        assert "revoked" in (ended.details() or "")
    assert list_jobs(address, secured.tokens["alice"]) == grpc.StatusCode.OK  # the others are untouched
    assert secured.jobqd.proc is not None and secured.jobqd.proc.poll() is None


def test_only_a_hash_is_stored_and_list_never_shows_tokens(tmp_path: Path) -> None:
    d = tmp_path / "d"
    token = create_token(d, role="admin", name="ops")
    raw = b"".join(p.read_bytes() for p in d.iterdir() if p.name.startswith("jobq.db"))
    assert token.encode() not in raw and token[5:].encode() not in raw
    with sqlite3.connect(d / "jobq.db") as conn:
        [(stored,)] = conn.execute("SELECT hash FROM tokens WHERE name = 'ops'").fetchall()
    assert len(stored) == 64 and stored not in token
    out = jobqd_cli("token", "list", "--output", "json", "--data-dir", str(d))
    assert out.returncode == 0
    assert [(t["name"], t["role"]) for t in json.loads(out.stdout)] == [("ops", "admin")]
    assert token not in out.stdout
    # a name is unique; an unknown one cannot be revoked; a bad role is a usage error
    dup = jobqd_cli("token", "create", "--role", "client", "--name", "ops", "--data-dir", str(d))
    assert dup.returncode == 1 and "exists" in dup.stderr
    missing = jobqd_cli("token", "revoke", "nobody", "--data-dir", str(d))
    assert missing.returncode == 1 and "not found" in missing.stderr
    bad = jobqd_cli("token", "create", "--role", "root", "--name", "x", "--data-dir", str(d))
    assert bad.returncode == 2


def test_without_tokens_jobqd_refuses_to_listen_beyond_loopback(tmp_path: Path) -> None:
    d = Jobqd(tmp_path / "d")
    d.extra = ("--listen", f"0.0.0.0:{d.port}")
    with pytest.raises(RuntimeError) as err:
        d.start(timeout=20)
    assert "refusing to listen on 0.0.0.0" in str(err.value)
    assert "jobqd token create" in str(err.value)
    assert d.proc is not None and d.proc.returncode == 1


def test_without_tokens_jobqd_serves_loopback_and_says_auth_is_off(jobqd: Jobqd) -> None:
    jobqd.jobs.ListJobs(js.ListJobsRequest())  # no token needed
    lines = [json.loads(ln) for ln in jobqd.log_path.read_text().splitlines() if ln.startswith("{")]
    assert any("authentication is off" in ln["event"] and "loopback only" in ln["event"] for ln in lines)


def test_with_tokens_jobqd_may_listen_on_all_addresses(tmp_path: Path) -> None:
    d = Jobqd(tmp_path / "d")
    create_token(d.data_dir, role="admin", name="root")
    d.extra = ("--listen", f"0.0.0.0:{d.port}")
    try:
        d.start()
        assert list_jobs(d.address, "jobq_wrong") == grpc.StatusCode.UNAUTHENTICATED
    finally:
        d.stop()


def test_the_first_token_turns_authentication_on_in_a_running_daemon(jobqd: Jobqd) -> None:
    jobqd.jobs.ListJobs(js.ListJobsRequest())
    with open_channel(jobqd.address) as ch:  # a stream opened while authentication is off
        watch = js_grpc.JobServiceStub(ch).WatchEvents(js.WatchEventsRequest(after_sequence=-1), timeout=20)
        token = create_token(jobqd.data_dir, role="admin", name="root")
        eventually(
            lambda: list_jobs(jobqd.address, "") == grpc.StatusCode.UNAUTHENTICATED,
            timeout=5,
            what="authentication to turn on",
        )
        # … does not outlive it: it ends, saying why
        ended = end_of(watch)
        assert ended.code() == grpc.StatusCode.UNAUTHENTICATED
        assert "authentication is now on" in (ended.details() or "")
    assert list_jobs(jobqd.address, token) == grpc.StatusCode.OK
    # revoking the last token does not turn it off again (that would open the API to everyone)
    revoke_token(jobqd.data_dir, "root")
    with open_channel(jobqd.address) as ch, pytest.raises(grpc.RpcError) as err:
        js_grpc.JobServiceStub(ch).ListJobs(js.ListJobsRequest(), timeout=5)
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
