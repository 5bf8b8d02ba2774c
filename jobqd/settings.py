"""jobqd settings: nested frozen dataclasses, filled from flags > JOBQD_* environment > TOML file.

Each field's comment gives its unit and why the default is what it is. The command line and the
environment only map onto these fields (see `OPTIONS`); nothing else reads configuration.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class ServerSettings:
    #: host:port for the gRPC API. Loopback by default: without tokens jobqd must not be reachable
    #: from other machines.
    listen: str = "127.0.0.1:7070"
    #: Seconds in-flight RPCs get to finish on shutdown; systemd's TimeoutStopSec must exceed it.
    grace_s: float = 10.0
    #: Largest message either way, bytes (docs/limits.md).
    max_message_bytes: int = 64 * 1024 * 1024
    #: PEM certificate chain and key: serve TLS instead of plaintext (both or neither).
    tls_cert: str = ""
    tls_key: str = ""
    #: PEM CA bundle: require a client certificate signed by it (mutual TLS). Needs tls_cert.
    tls_client_ca: str = ""
    #: host:port of the Prometheus endpoint (/metrics over HTTP); empty = off.
    metrics_listen: str = ""
    #: The asyncio event loop: uvloop (libuv; ~15 % less CPU per job in Kueue mode, where the
    #: loop carries TLS streams to the API server) or the standard library's.
    event_loop: str = "uvloop"


@dataclass(frozen=True)
class StoreSettings:
    #: Where jobq.db and task logs live.
    data_dir: Path = Path(".jobq")
    #: FULL = every acknowledged write survives power loss; NORMAL trades the last commits on
    #: power loss (not on a process crash) for throughput.
    synchronous: str = "FULL"
    #: Most write sets one commit takes. 1 = a commit per request (the benchmark's baseline).
    group_commit_max_batch: int = 1024
    #: Finished jobs older than this many seconds move to the archive tables (still listable).
    retention_s: float = 7 * 24 * 3600.0
    #: How often the archiver runs, seconds.
    archive_interval_s: float = 60.0
    #: Seconds between WAL checkpoints + quick_check; keeps the WAL from growing without bound.
    maintenance_interval_s: float = 300.0


@dataclass(frozen=True)
class DispatchSettings:
    #: Seconds between node heartbeats (sent to nodes in Welcome).
    heartbeat_interval_s: float = 5.0
    #: A node silent this long is offline and its tasks are interrupted. 12 heartbeats: long
    #: enough to ride out a GC pause or a brief network cut, short enough to recover work.
    node_timeout_s: float = 60.0
    #: SIGTERM→SIGKILL grace a node gives an aborted task, seconds.
    abort_grace_s: float = 10.0


@dataclass(frozen=True)
class AdmissionSettings:
    #: "local" (embedded, one machine, no setup) or "kueue" (Kubernetes + Kueue).
    mode: str = "local"
    #: kueue mode: kubeconfig path; empty = in-cluster config.
    kubeconfig: str = ""
    #: kueue mode: namespace of the Workloads and LocalQueues.
    namespace: str = "default"


@dataclass(frozen=True)
class AuthSettings:
    #: "auto": authentication is on as soon as any token exists (and then stays on until restart);
    #: "required": on even with no tokens (every call refused until one is created).
    mode: str = "auto"
    #: Seconds between re-reads of the tokens table: a revoked token stops working within this long.
    token_refresh_s: float = 1.0


@dataclass(frozen=True)
class LimitSettings:
    """Overload bounds (docs/limits.md): past them a call gets RESOURCE_EXHAUSTED, not memory."""

    #: Submit RPCs (SubmitJob(s), CreateJob, AddTasks) being processed at once. A burst beyond
    #: what the store can commit queues here instead of in memory without bound.
    max_inflight_submits: int = 1024
    #: Bytes of those submits' requests together (one larger request alone is still accepted).
    max_inflight_submit_bytes: int = 256 * 1024 * 1024
    #: Open streams (WatchEvents, TailTaskLog, a node's Connect) per token, or per connection
    #: without authentication. Each costs a task and a queue; one client must not exhaust them.
    max_streams_per_identity: int = 128


@dataclass(frozen=True)
class LogSettings:
    level: str = "info"
    #: auto = console on a TTY, JSON otherwise.
    format: str = "auto"


@dataclass(frozen=True)
class Settings:
    server: ServerSettings = field(default_factory=ServerSettings)
    store: StoreSettings = field(default_factory=StoreSettings)
    dispatch: DispatchSettings = field(default_factory=DispatchSettings)
    admission: AdmissionSettings = field(default_factory=AdmissionSettings)
    auth: AuthSettings = field(default_factory=AuthSettings)
    limits: LimitSettings = field(default_factory=LimitSettings)
    log: LogSettings = field(default_factory=LogSettings)


def _choice(*values: str) -> Callable[[str], str]:
    def conv(v: str) -> str:
        if v.lower() not in values:
            raise ValueError(f"must be one of {', '.join(values)}")
        return v.lower()

    return conv


def _positive(v: str) -> float:
    x = float(v)
    if not x > 0:
        raise ValueError("must be > 0")
    return x


def _count(v: str) -> int:
    x = int(v)
    if x < 1:
        raise ValueError("must be >= 1")
    return x


#: option name (flag --x-y, env JOBQD_X_Y, TOML [section] key) → (section, field, converter)
OPTIONS: dict[str, tuple[str, str, Callable[[str], Any]]] = {
    "listen": ("server", "listen", str),
    "grace": ("server", "grace_s", _positive),
    "tls_cert": ("server", "tls_cert", str),
    "tls_key": ("server", "tls_key", str),
    "tls_client_ca": ("server", "tls_client_ca", str),
    "metrics_listen": ("server", "metrics_listen", str),
    "event_loop": ("server", "event_loop", _choice("uvloop", "asyncio")),
    "data_dir": ("store", "data_dir", Path),
    "synchronous": ("store", "synchronous", lambda v: _choice("full", "normal")(v).upper()),
    "retention": ("store", "retention_s", _positive),
    "group_commit_max_batch": ("store", "group_commit_max_batch", lambda v: max(1, int(v))),
    "maintenance_interval": ("store", "maintenance_interval_s", _positive),
    "heartbeat_interval": ("dispatch", "heartbeat_interval_s", _positive),
    "node_timeout": ("dispatch", "node_timeout_s", _positive),
    "abort_grace": ("dispatch", "abort_grace_s", _positive),
    "admission": ("admission", "mode", _choice("local", "kueue")),
    "kubeconfig": ("admission", "kubeconfig", str),
    "namespace": ("admission", "namespace", str),
    "auth": ("auth", "mode", _choice("auto", "required")),
    "token_refresh": ("auth", "token_refresh_s", _positive),
    "max_inflight_submits": ("limits", "max_inflight_submits", _count),
    "max_inflight_submit_bytes": ("limits", "max_inflight_submit_bytes", _count),
    "max_streams_per_identity": ("limits", "max_streams_per_identity", _count),
    "log_level": ("log", "level", _choice("debug", "info", "warning", "error")),
    "log_format": ("log", "format", _choice("auto", "console", "json")),
}


class SettingsError(ValueError):
    pass


def load(
    flags: Mapping[str, object], *, environ: Mapping[str, str] | None = None, config_file: Path | None = None
) -> Settings:
    """Build Settings: a flag given on the command line wins over JOBQD_<NAME>, which wins over the file."""
    env = os.environ if environ is None else environ
    values: dict[str, dict[str, Any]] = {}
    path = config_file or (Path(env["JOBQD_CONFIG"]) if env.get("JOBQD_CONFIG") else None)
    if path is not None:
        try:
            doc = tomllib.loads(path.read_text())
        except (OSError, tomllib.TOMLDecodeError) as err:
            raise SettingsError(f"cannot read config file {path}: {err}") from err
        for name, (section, attr, conv) in OPTIONS.items():
            if name in doc.get(section, {}) or attr in doc.get(section, {}):
                raw = doc[section].get(name, doc[section].get(attr))
                values.setdefault(section, {})[attr] = _convert(conv, str(raw), f"{path} [{section}] {name}")
    for name, (section, attr, conv) in OPTIONS.items():
        key = f"JOBQD_{name.upper()}"
        if env.get(key):
            values.setdefault(section, {})[attr] = _convert(conv, env[key], key)
    for name, (section, attr, conv) in OPTIONS.items():
        raw = flags.get(name)
        if raw is not None:
            values.setdefault(section, {})[attr] = _convert(conv, str(raw), f"--{name.replace('_', '-')}")
    base = Settings()
    settings = dataclasses.replace(
        base,
        **{
            section: dataclasses.replace(getattr(base, section), **fields)
            for section, fields in values.items()
        },
    )
    _check(settings)
    return settings


def _check(s: Settings) -> None:
    srv = s.server
    if bool(srv.tls_cert) != bool(srv.tls_key):
        raise SettingsError("--tls-cert and --tls-key: give both (TLS) or neither")
    if srv.tls_client_ca and not srv.tls_cert:
        raise SettingsError("--tls-client-ca needs --tls-cert and --tls-key (mutual TLS is TLS first)")
    if srv.metrics_listen and ":" not in srv.metrics_listen:
        raise SettingsError(f"--metrics-listen: {srv.metrics_listen!r} is not HOST:PORT")


def _convert(conv: Callable[[str], Any], raw: str, where: str) -> Any:
    try:
        return conv(raw)
    except ValueError as err:
        raise SettingsError(f"{where}: {raw!r}: {err}") from None
