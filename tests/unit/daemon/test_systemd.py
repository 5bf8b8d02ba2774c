"""sd_notify against a real AF_UNIX datagram socket standing in for systemd's notify socket."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from jobqd.systemd import SystemdNotifier, run_watchdog


def _receiver(address: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(address)
    sock.settimeout(5)
    return sock


@pytest.fixture
def systemd_socket(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    """A bound datagram socket, advertised to the code under test as NOTIFY_SOCKET."""
    path = tmp_path / "notify"
    assert len(str(path)) < 100, "AF_UNIX paths are limited to 108 bytes"
    with _receiver(str(path)) as sock:
        monkeypatch.setenv("NOTIFY_SOCKET", str(path))
        yield sock


def _recv(sock: socket.socket) -> str:
    return sock.recv(4096).decode()


def test_ready_stopping_status_and_watchdog_arrive(systemd_socket: socket.socket) -> None:
    notifier = SystemdNotifier()
    assert notifier.enabled

    assert notifier.ready()
    assert _recv(systemd_socket) == "READY=1"
    assert notifier.status("loading 12000 jobs")
    assert _recv(systemd_socket) == "STATUS=loading 12000 jobs"
    assert notifier.watchdog()
    assert _recv(systemd_socket) == "WATCHDOG=1"
    assert notifier.stopping("draining node sessions")
    assert _recv(systemd_socket) == "STOPPING=1\nSTATUS=draining node sessions"
    assert notifier.extend_timeout(2.5)
    assert _recv(systemd_socket) == "EXTEND_TIMEOUT_USEC=2500000"


def test_status_text_cannot_inject_assignments(systemd_socket: socket.socket) -> None:
    SystemdNotifier().ready(status="serving\nSTOPPING=1")
    assert _recv(systemd_socket) == "READY=1\nSTATUS=serving STOPPING=1"


def test_notify_socket_is_popped_so_children_do_not_inherit_it(systemd_socket: socket.socket) -> None:
    SystemdNotifier()

    assert "NOTIFY_SOCKET" not in os.environ
    child = subprocess.run(
        [sys.executable, "-c", "import os; print(os.environ.get('NOTIFY_SOCKET'))"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    assert child.stdout.strip() == "None"


def test_watchdog_variables_are_popped_too(
    systemd_socket: socket.socket, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "30000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))

    notifier = SystemdNotifier()

    assert notifier.watchdog_interval() == 30.0
    assert "WATCHDOG_USEC" not in os.environ
    assert "WATCHDOG_PID" not in os.environ


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="abstract sockets are Linux-only")
def test_abstract_namespace_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"jobq-test-{uuid.uuid4().hex}"
    with _receiver("\0" + name) as sock:
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        notifier = SystemdNotifier()

        assert notifier.enabled
        assert notifier.ready()
        assert _recv(sock) == "READY=1"


def test_everything_is_a_no_op_outside_systemd(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    monkeypatch.setenv("WATCHDOG_USEC", "30000000")

    notifier = SystemdNotifier()

    assert not notifier.enabled
    assert notifier.ready() is False
    assert notifier.stopping() is False
    assert notifier.status("x") is False
    assert notifier.watchdog() is False
    # Nobody to ping, so nothing to keep alive.
    assert notifier.watchdog_interval() is None


@pytest.mark.parametrize("value", ["", "relative/path", "@", "vsock:2:1234"])
def test_unusable_notify_socket_values_disable_notifications(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", value)
    notifier = SystemdNotifier()
    assert not notifier.enabled
    assert notifier.ready() is False


def test_send_errors_are_logged_at_debug_not_raised(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "nobody-listens"))
    notifier = SystemdNotifier()

    with capture_logs() as logs:
        assert notifier.ready() is False

    assert [entry["log_level"] for entry in logs] == ["debug"]
    assert logs[0]["message"] == ("READY=1",)


def test_injected_environ_is_used_and_popped() -> None:
    env = {"NOTIFY_SOCKET": "/run/systemd/notify", "WATCHDOG_USEC": "4000000", "HOME": "/root"}
    notifier = SystemdNotifier(environ=env)
    assert notifier.enabled
    assert notifier.watchdog_interval() == 4.0
    assert env == {"HOME": "/root"}


@pytest.mark.parametrize(
    ("usec", "pid", "expected"),
    [
        ("30000000", None, 30.0),
        ("500000", "self", 0.5),
        ("30000000", "other", None),  # meant for another process: we inherited it
        ("30000000", "not-a-pid", None),
        ("thirty", None, None),
        ("0", None, None),
        ("-5", None, None),
        (None, "self", None),
    ],
)
def test_watchdog_interval_parsing(usec: str | None, pid: str | None, expected: float | None) -> None:
    env = {"NOTIFY_SOCKET": "/run/systemd/notify"}
    if usec is not None:
        env["WATCHDOG_USEC"] = usec
    if pid is not None:
        env["WATCHDOG_PID"] = {"self": str(os.getpid()), "other": str(os.getpid() + 1)}.get(pid, pid)

    assert SystemdNotifier(environ=env).watchdog_interval() == expected


async def test_run_watchdog_pings_arrive_at_the_socket(systemd_socket: socket.socket) -> None:
    loop = asyncio.get_running_loop()
    systemd_socket.setblocking(False)

    pinger = asyncio.create_task(run_watchdog(SystemdNotifier(), 0.2), name="watchdog")
    try:
        for _ in range(2):
            message = await asyncio.wait_for(loop.sock_recv(systemd_socket, 4096), timeout=5)
            assert message == b"WATCHDOG=1"
    finally:
        pinger.cancel()
        with pytest.raises(asyncio.CancelledError):
            await pinger


class _Stop(Exception):
    pass


async def test_run_watchdog_pings_at_once_then_every_half_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, float]] = []

    class Recorder:
        def watchdog(self) -> bool:
            calls.append(("ping", 0))
            return True

    async def fake_sleep(delay: float) -> None:
        calls.append(("sleep", delay))
        if len(calls) >= 6:
            raise _Stop

    monkeypatch.setattr("jobqd.systemd.asyncio.sleep", fake_sleep)
    with pytest.raises(_Stop):
        await run_watchdog(Recorder(), 30.0)

    assert calls == [("ping", 0), ("sleep", 15.0)] * 3


async def test_run_watchdog_rejects_a_non_positive_interval() -> None:
    with pytest.raises(ValueError, match="positive"):
        await run_watchdog(SystemdNotifier(environ={}), 0)
