"""Start real jobqd / jobq-node processes for integration tests (port 0, temp data dirs)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import grpc
from jobq.v1 import job_service_pb2_grpc as js_grpc
from jobq.v1 import node_service_pb2_grpc as ns_grpc
from jobq.v1 import queue_service_pb2_grpc as qs_grpc

BIN = Path(sys.executable).parent
T = TypeVar("T")


def eventually(check: Callable[[], T], *, timeout: float = 20.0, interval: float = 0.05, what: str = "") -> T:
    """Poll `check` until it returns a truthy value (returned) or the deadline passes (AssertionError)."""
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            last = check()
            if last:
                return last  # type: ignore[return-value]
        except AssertionError as err:
            last = err
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or check}: last={last!r}")
        time.sleep(interval)


class _BearerToken(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor):  # type: ignore[misc]
    """Adds `authorization: Bearer <token>` to every call on a channel."""

    def __init__(self, token: str) -> None:
        self._metadata = ("authorization", f"Bearer {token}")

    def _details(self, details: grpc.ClientCallDetails) -> grpc.ClientCallDetails:
        return details._replace(metadata=[*(details.metadata or ()), self._metadata])  # type: ignore[attr-defined,no-any-return]

    def intercept_unary_unary(self, continuation, client_call_details, request):  # type: ignore[no-untyped-def]
        return continuation(self._details(client_call_details), request)

    def intercept_unary_stream(self, continuation, client_call_details, request):  # type: ignore[no-untyped-def]
        return continuation(self._details(client_call_details), request)


def open_channel(
    address: str,
    *,
    token: str | None = None,
    tls_ca: Path | None = None,
    tls_cert: Path | None = None,
    tls_key: Path | None = None,
) -> grpc.Channel:
    """A channel to jobqd: TLS when `tls_ca` is given (client certificate: mutual TLS), and a
    bearer token on every unary / server-streaming call when `token` is given."""
    if tls_ca is None:
        channel = grpc.insecure_channel(address)
    else:
        creds = grpc.ssl_channel_credentials(
            root_certificates=tls_ca.read_bytes(),
            private_key=tls_key.read_bytes() if tls_key else None,
            certificate_chain=tls_cert.read_bytes() if tls_cert else None,
        )
        channel = grpc.secure_channel(address, creds)
    return grpc.intercept_channel(channel, _BearerToken(token)) if token else channel


@dataclass
class Jobqd:
    data_dir: Path
    extra: Sequence[str] = ()
    proc: subprocess.Popen[bytes] | None = None
    address: str = ""
    log_path: Path = field(init=False)
    _channel: grpc.Channel | None = None

    port: int = 0

    def __post_init__(self) -> None:
        self.log_path = self.data_dir.parent / f"{self.data_dir.name}.jobqd.log"
        # a fixed port for the daemon's lifetime, so nodes find it again after a restart
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]

    def start(self, *, timeout: float = 30.0) -> Jobqd:
        addr_file = self.data_dir / "jobqd.addr"
        addr_file.unlink(missing_ok=True)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [
                str(BIN / "jobqd"),
                "--listen",
                f"127.0.0.1:{self.port}",
                "--data-dir",
                str(self.data_dir),
                "--log-format",
                "json",
                *self.extra,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONWARNINGS": "default"},
        )
        log.close()

        def ready() -> str:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"jobqd exited with {self.proc.returncode}:\n{self.log_tail()}")
            return addr_file.read_text().strip() if addr_file.exists() else ""

        self.address = eventually(ready, timeout=timeout, what="jobqd to listen")
        self._channel = None
        return self

    def log_tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except FileNotFoundError:
            return ""

    def log_records(self, event: str = "") -> list[dict[str, Any]]:
        """Its JSON log records (lines that are not JSON skipped), only those of `event` if given."""
        out = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if isinstance(rec, dict) and (not event or rec.get("event") == event):
                out.append(rec)
        return out

    @property
    def channel(self) -> grpc.Channel:
        if self._channel is None:
            self._channel = grpc.insecure_channel(self.address)
        return self._channel

    @property
    def jobs(self) -> js_grpc.JobServiceStub:
        return js_grpc.JobServiceStub(self.channel)

    @property
    def queues(self) -> qs_grpc.QueueServiceStub:
        return qs_grpc.QueueServiceStub(self.channel)

    @property
    def nodes(self) -> ns_grpc.NodeAdminServiceStub:
        return ns_grpc.NodeAdminServiceStub(self.channel)

    def _close_channel(self) -> None:
        if self._channel is not None:
            self._channel.close()
            self._channel = None

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs."""
        self._close_channel()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> int:
        self._close_channel()
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


@dataclass
class NodeProc:
    name: str
    server: str
    work_dir: Path
    slots: int = 2
    extra: Sequence[str] = ()
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log_path = self.work_dir.parent / f"{self.name}.node.log"

    def start(self) -> NodeProc:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [
                str(BIN / "jobq-node"),
                "--server",
                self.server,
                "--name",
                self.name,
                "--slots",
                str(self.slots),
                "--work-dir",
                str(self.work_dir),
                "--grace-period",
                "2",
                *self.extra,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        return self

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        # make sure no task process of this node outlives the test
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)
