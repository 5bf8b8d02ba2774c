"""How both clients open their channel: message size, TLS, auth metadata, default timeout.

Kept in one place so the async and the sync client cannot drift apart on what they send.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

import grpc
import grpc.aio

from jobq.errors import InvalidArgument

__all__ = [
    "DEFAULT_ADDRESS",
    "DEFAULT_TIMEOUT_S",
    "MAX_MESSAGE_BYTES",
    "ChannelConfig",
]

DEFAULT_ADDRESS: Final = "127.0.0.1:7070"
#: Deadline of every unary call. Long enough for a durable submit of a large batch on a busy
#: daemon; streams (watch, log follow) get no deadline.
DEFAULT_TIMEOUT_S: Final = 30.0
#: The daemon accepts messages up to this size (docs/limits.md); the client matches it so a large
#: SubmitJobs batch or a full job view is not refused by the client's own 4 MiB default.
MAX_MESSAGE_BYTES: Final = 64 * 1024 * 1024

_OPTIONS: Final = (
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.primary_user_agent", "jobq-python"),
)


class ChannelConfig:
    """Address, credentials and per-call metadata, checked once when a client is created."""

    def __init__(
        self,
        address: str,
        *,
        token: str | None = None,
        tls_ca: str | Path | None = None,
        tls_cert: str | Path | None = None,
        tls_key: str | Path | None = None,
    ) -> None:
        if not address:
            raise InvalidArgument("address: must not be empty (host:port)")
        self.address = address
        token = (token or "").strip()
        self.metadata: tuple[tuple[str, str], ...] = (("authorization", f"Bearer {token}"),) if token else ()
        if (tls_cert is None) != (tls_key is None):
            raise InvalidArgument("tls_cert and tls_key: give both (mutual TLS) or neither")
        self.credentials: grpc.ChannelCredentials | None = None
        if tls_ca is not None or tls_cert is not None:
            self.credentials = grpc.ssl_channel_credentials(
                root_certificates=_read(tls_ca, "tls_ca"),
                private_key=_read(tls_key, "tls_key"),
                certificate_chain=_read(tls_cert, "tls_cert"),
            )

    def aio_channel(self) -> grpc.aio.Channel:
        if self.credentials is None:
            return grpc.aio.insecure_channel(self.address, options=_OPTIONS)
        return grpc.aio.secure_channel(self.address, self.credentials, options=_OPTIONS)

    def sync_channel(self) -> grpc.Channel:
        if self.credentials is None:
            return grpc.insecure_channel(self.address, options=_OPTIONS)
        return grpc.secure_channel(self.address, self.credentials, options=_OPTIONS)


def _read(path: str | Path | None, what: str) -> bytes | None:
    if path is None:
        return None
    try:
        return Path(path).read_bytes()
    except OSError as err:
        raise InvalidArgument(f"{what}: cannot read {path}: {err.strerror}") from err
