"""What a node is configured with: frozen dataclasses, filled by the CLI (flags and JOBQ_NODE_* env).

Pure apart from the few defaults that look at the machine (host name, CPU count, memory, home).
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from jobq.node.backoff import Backoff
from jobq.node.limits import LimitSettings
from jobq.node.output import MAX_LINE_BYTES

DEFAULT_ENV_PASSTHROUGH = ("PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "LC_*", "TZ", "TMPDIR")
"""Variables of the node's own environment that commands see (plus params.env and JOBQ_*)."""

_LABEL_NAME = re.compile(r"([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)")
_LABEL_PREFIX = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?")
_LABEL_VALUE = re.compile(r"(([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?)")
_QUANTITY = re.compile(r"[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei|[eE][0-9]+)?")


@dataclass(frozen=True)
class ConnectionSettings:
    """How to reach jobqd."""

    server: str
    """jobqd's node endpoint, HOST:PORT."""
    token: str | None = None
    """Bearer token with the ``node`` role; jobqd requires one unless it listens on loopback only."""
    tls: bool = False
    """Use TLS (with the system's CA roots unless ``tls_ca`` is given)."""
    tls_ca: Path | None = None
    """CA bundle to verify jobqd's certificate; implies ``tls``."""
    tls_cert: Path | None = None
    """Client certificate for mutual TLS (with ``tls_key``); implies ``tls``."""
    tls_key: Path | None = None
    """Private key of ``tls_cert``."""
    heartbeat_s: float = 5.0
    """Heartbeat interval until jobqd's Welcome says otherwise (jobqd's default is the same)."""
    connect_timeout_s: float = 10.0
    """How long opening the stream and writing Hello may take before the node tries again."""
    keepalive_s: float = 360.0
    """HTTP/2 keepalive ping interval, seconds; 0 = off. A gRPC server with default settings
    answers pings more frequent than every 5 minutes on a stream where it sends nothing with
    GOAWAY "too_many_pings", hence 6 minutes; lower it only if jobqd permits. Keepalive also arms
    TCP_USER_TIMEOUT (``keepalive_timeout_s``), so heartbeats that stay unacknowledged reveal a
    dead network path within seconds rather than TCP's 15 minutes."""
    keepalive_timeout_s: float = 20.0
    """How long a ping, or written data, may stay unacknowledged before the connection is dropped."""
    backoff: Backoff = field(default_factory=Backoff)
    """Reconnect delays."""


@dataclass(frozen=True)
class ExecutionSettings:
    """How commands run."""

    work_dir: Path
    """Parent of the per-attempt working directories."""
    keep_work_dirs: bool = False
    """Keep each attempt's directory after it ended (for debugging)."""
    grace_period_s: float = 10.0
    """SIGTERM → SIGKILL delay on timeouts, on shutdown and for Aborts that carry none (jobqd's
    default grace is the same 10 s)."""
    allow_commands: tuple[str, ...] = ()
    """Globs of absolute program paths ``exec`` may run; empty = any."""
    allow_shell: bool = False
    """Whether ``shell`` commands may run (they bypass the allowlist)."""
    task_types: tuple[str, ...] = ()
    """Restrict the command types this node advertises and runs; empty = all it has."""
    env_passthrough: tuple[str, ...] = DEFAULT_ENV_PASSTHROUGH
    """Names (``LC_*`` = prefix) of the node's environment variables commands inherit."""
    run_as: str | None = None
    """User (name or uid) commands run as; only a node running as root can switch."""
    limits: LimitSettings = field(default_factory=LimitSettings)
    """RLIMIT_* of command processes (jobq.node.limits)."""


@dataclass(frozen=True)
class OutputSettings:
    """How task output travels to jobqd; the bounds are what keeps memory flat under a flood."""

    max_line_bytes: int = MAX_LINE_BYTES
    """Longer lines are truncated."""
    flush_interval_s: float = 0.05
    """A partly filled batch of lines goes out after at most this long."""
    batch_lines: int = 4096
    """A batch goes out at once when it has this many lines ..."""
    batch_bytes: int = 256 * 1024
    """... or this many bytes (well under gRPC's 4 MiB message limit)."""
    buffer_bytes: int = 8 * 1024 * 1024
    """Log bytes queued for the stream, all attempts together; past it, output waits."""
    hold_s: float = 60.0
    """While jobqd is unreachable, output waits this long for room before it is dropped, so that
    short outages lose nothing and long ones do not freeze the tasks."""
    max_buffered_updates: int = 10_000
    """Updates queued for the stream; past it the oldest non-final ones are dropped."""


@dataclass(frozen=True)
class NodeSettings:
    """Everything ``jobq-node`` is started with."""

    name: str
    """Unique node name (defaults to the host name)."""
    connection: ConnectionSettings
    execution: ExecutionSettings
    slots: int
    """Attempts run at once (defaults to the CPU count)."""
    labels: Mapping[str, str] = field(default_factory=dict)
    capacity: Mapping[str, str] = field(default_factory=dict)
    """Advertised to jobqd as Kubernetes quantities: slots, cpu, memory, gpu."""
    output: OutputSettings = field(default_factory=OutputSettings)
    log_level: str = "info"
    shutdown_flush_s: float = 5.0
    """On shutdown, how long the node waits for queued results to reach jobqd."""


def default_name() -> str:
    """The host name (short form)."""
    return socket.gethostname().split(".", 1)[0] or "localhost"


def default_slots() -> int:
    """One slot per CPU the process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def default_work_dir() -> Path:
    """``$XDG_CACHE_HOME/jobq-node/work`` (``~/.cache/...``): per user, scratch, not backed up."""
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "jobq-node" / "work"


def physical_memory() -> str | None:
    """Total RAM as a quantity (``"23Gi"``-style, in Mi), or None if unknown."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None
    return f"{total // 2**20}Mi" if total > 0 else None


def parse_labels(text: str | Iterable[str]) -> dict[str, str]:
    """``"k=v,k2=v2"`` (or several such strings) as a dict; label syntax as in Kubernetes."""
    parts = [text] if isinstance(text, str) else list(text)
    labels: dict[str, str] = {}
    for part in parts:
        for raw in part.split(","):
            item = raw.strip()
            if not item:
                continue
            key, sep, value = item.partition("=")
            key, value = key.strip(), value.strip()
            if not sep:
                raise ValueError(f"label {item!r}: expected key=value")
            check_label(key, value)
            labels[key] = value
    return labels


def check_label(key: str, value: str) -> None:
    """Raise ValueError unless ``key=value`` is a valid Kubernetes label."""
    prefix, slash, name = key.rpartition("/")
    if slash and not _LABEL_PREFIX.fullmatch(prefix):
        raise ValueError(f"label key {key!r}: invalid prefix {prefix!r}")
    if not _LABEL_NAME.fullmatch(name):
        raise ValueError(
            f"label key {key!r}: must be 1-63 characters [A-Za-z0-9-_.], starting and ending alphanumeric"
        )
    if not _LABEL_VALUE.fullmatch(value):
        raise ValueError(
            f"label value {value!r}: must be at most 63 characters [A-Za-z0-9-_.], "
            "starting and ending alphanumeric"
        )


def parse_list(values: str | Iterable[str]) -> tuple[str, ...]:
    """Comma- (or whitespace-) separated names, possibly from several flags, without duplicates."""
    parts = [values] if isinstance(values, str) else list(values)
    out: dict[str, None] = {}
    for part in parts:
        for item in re.split(r"[,\s]+", part):
            if item:
                out[item] = None
    return tuple(out)


def check_quantity(name: str, value: str) -> str:
    """``value`` if it is a Kubernetes quantity (``2``, ``500m``, ``16Gi``), else ValueError."""
    if not _QUANTITY.fullmatch(value.strip()):
        raise ValueError(f"{name} {value!r}: not a quantity (examples: 2, 500m, 16Gi)")
    return value.strip()


def build_capacity(*, slots: int, cpu: str | None, memory: str | None, gpu: int | None) -> dict[str, str]:
    """The Hello capacity map; cpu and memory default to what the machine has."""
    capacity = {"slots": str(slots)}
    capacity["cpu"] = check_quantity("--cpu", cpu) if cpu else str(os.cpu_count() or 1)
    mem = check_quantity("--memory", memory) if memory else physical_memory()
    if mem:
        capacity["memory"] = mem
    if gpu:
        capacity["gpu"] = str(gpu)
    return capacity
