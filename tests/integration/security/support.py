"""Helpers of the security tests: tokens through the real `jobqd token` CLI, certificates through
the `openssl` CLI (made fresh in each test; nothing is checked in), and generic RPC calls driven by
the generated descriptors."""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import jobq.v1
from google.protobuf import message_factory
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor

from tests.support.procs import BIN


def jobqd_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "jobqd"), *args], capture_output=True, text=True, timeout=30, check=False
    )


def create_token(data_dir: Path, *, role: str, name: str) -> str:
    out = jobqd_cli("token", "create", "--role", role, "--name", name, "--data-dir", str(data_dir))
    assert out.returncode == 0, out.stderr
    token = out.stdout.strip()
    assert token.startswith("jobq_") and "\n" not in token
    return token


def revoke_token(data_dir: Path, name: str) -> None:
    out = jobqd_cli("token", "revoke", name, "--data-dir", str(data_dir))
    assert out.returncode == 0, out.stderr


def jobq_services() -> Iterator[ServiceDescriptor]:
    """Every service of every generated module in jobq.v1: a new one is picked up by itself."""
    for mod in pkgutil.iter_modules(jobq.v1.__path__):
        if mod.name.endswith("_pb2"):
            module = importlib.import_module(f"jobq.v1.{mod.name}")
            yield from module.DESCRIPTOR.services_by_name.values()


def all_methods() -> list[tuple[ServiceDescriptor, MethodDescriptor]]:
    return [(s, m) for s in jobq_services() for m in s.methods]


def call(
    channel: grpc.Channel, service: ServiceDescriptor, method: MethodDescriptor, *, token: str | None
) -> grpc.StatusCode:
    """Call `method` with an empty request (and, for a bidi stream, no messages); the status it
    ended with, or OK when it answered (or streamed) without error."""
    path = f"/{service.full_name}/{method.name}"
    req = message_factory.GetMessageClass(method.input_type)
    resp = message_factory.GetMessageClass(method.output_type)
    md = [("authorization", f"Bearer {token}")] if token is not None else []
    kw = {"request_serializer": req.SerializeToString, "response_deserializer": resp.FromString}
    try:
        if method.client_streaming and method.server_streaming:
            it = channel.stream_stream(path, **kw)(iter(()), metadata=md, timeout=5)
            for _ in it:
                break
        elif method.server_streaming:
            it = channel.unary_stream(path, **kw)(req(), metadata=md, timeout=1)
            for _ in it:
                break
            it.cancel()
        elif method.client_streaming:
            channel.stream_unary(path, **kw)(iter(()), metadata=md, timeout=5)
        else:
            channel.unary_unary(path, **kw)(req(), metadata=md, timeout=5)
    except grpc.RpcError as err:
        return err.code()  # type: ignore[no-any-return]
    return grpc.StatusCode.OK


@dataclass(frozen=True)
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    #: a certificate from another CA, which jobqd must not accept for mutual TLS
    stranger_cert: Path
    stranger_key: Path


def _openssl(*args: str, cwd: Path) -> None:
    out = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=30, check=False)
    assert out.returncode == 0, out.stderr


def _ca(d: Path, name: str) -> None:
    _openssl(
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", f"{name}.key", "-out", f"{name}.pem", "-days", "2", "-subj", f"/CN={name}",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        cwd=d,
    )  # fmt: skip


def _leaf(d: Path, name: str, *, ca: str, cn: str, ext: str) -> None:
    (d / f"{name}.ext").write_text(ext)
    _openssl(
        "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={cn}",
        cwd=d,
    )  # fmt: skip
    _openssl(
        "x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
        "-CAcreateserial", "-out", f"{name}.pem", "-days", "2", "-extfile", f"{name}.ext",
        cwd=d,
    )  # fmt: skip


def make_pki(d: Path) -> Pki:
    d.mkdir(parents=True, exist_ok=True)
    _ca(d, "ca")
    _ca(d, "other-ca")
    _leaf(
        d,
        "server",
        ca="ca",
        cn="localhost",
        ext="subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n",
    )
    client_ext = "extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n"
    _leaf(d, "client", ca="ca", cn="alice", ext=client_ext)
    _leaf(d, "stranger", ca="other-ca", cn="mallory", ext=client_ext)
    return Pki(
        ca=d / "ca.pem",
        server_cert=d / "server.pem",
        server_key=d / "server.key",
        client_cert=d / "client.pem",
        client_key=d / "client.key",
        stranger_cert=d / "stranger.pem",
        stranger_key=d / "stranger.key",
    )
