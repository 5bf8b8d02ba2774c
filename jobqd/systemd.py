"""Tell systemd how jobqd is doing, without depending on libsystemd or python-systemd.

The unit is ``Type=notify`` with a watchdog: systemd considers jobqd started only when it sends
``READY=1`` (after the database is open and the port is bound), shows ``STATUS=`` text in
``systemctl status``, and restarts jobqd when ``WATCHDOG=1`` pings stop arriving. The pings are sent
from the event loop itself (:func:`run_watchdog`), so a loop blocked by a runaway callback is detected
and killed rather than left serving nothing.

The protocol is one datagram of ``KEY=value`` lines to the AF_UNIX socket named by ``NOTIFY_SOCKET``
(a path, or ``@name`` for the abstract namespace). Like waveform80/nobodd and gunicorn, the variables
are popped from the environment when read, so processes jobqd starts do not inherit them and
notify on its behalf. Outside systemd every call is a no-op, and a failed send is logged at debug and
otherwise ignored: losing a status update must never take the daemon down.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import MutableMapping
from typing import Protocol

from jobqd.log_config import get_logger

__all__ = ["SystemdNotifier", "WatchdogPinger", "run_watchdog"]

log = get_logger(__name__)


class SystemdNotifier:
    """Sends sd_notify messages to the socket systemd gave this process, if any.

    Reads and removes ``NOTIFY_SOCKET``, ``WATCHDOG_USEC`` and ``WATCHDOG_PID`` from *environ*
    (default :data:`os.environ`) once, at construction; create one instance early in ``main``.
    """

    __slots__ = ("_address", "_watchdog_interval")

    def __init__(self, *, environ: MutableMapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        self._address = _parse_address(env.pop("NOTIFY_SOCKET", None))
        self._watchdog_interval = _parse_watchdog(
            usec=env.pop("WATCHDOG_USEC", None), pid=env.pop("WATCHDOG_PID", None)
        )

    @property
    def enabled(self) -> bool:
        """True when running under a systemd that listens for notifications."""
        return self._address is not None

    def notify(self, *assignments: str) -> bool:
        """Send ``KEY=value`` *assignments* as one message; True if it was handed to the socket."""
        if self._address is None or not assignments:
            return False
        payload = "\n".join(assignments).encode()
        try:
            # A fresh socket per message, as libsystemd does: a socket connected once would break
            # when systemd re-executes itself and re-creates its notify socket.
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                # Non-blocking: a stuck systemd must not stall the event loop that sends watchdog pings.
                sock.setblocking(False)
                sock.sendto(payload, self._address)
        except OSError as err:
            log.debug("sd_notify failed", message=assignments, error=str(err))
            return False
        return True

    def ready(self, status: str | None = None) -> bool:
        """Startup is complete: systemd marks the unit active and starts its dependents."""
        return self.notify("READY=1", *_status_line(status))

    def stopping(self, status: str | None = None) -> bool:
        """Shutdown has begun: systemd stops expecting watchdog pings and waits for exit."""
        return self.notify("STOPPING=1", *_status_line(status))

    def status(self, text: str) -> bool:
        """Free-form one-line status, shown by ``systemctl status``."""
        return self.notify(*_status_line(text))

    def watchdog(self) -> bool:
        """Tell systemd the service is alive; must happen within every watchdog interval."""
        return self.notify("WATCHDOG=1")

    def extend_timeout(self, seconds: float) -> bool:
        """Ask for *seconds* more before the start or stop timeout fires (long loads, long drains)."""
        return self.notify(f"EXTEND_TIMEOUT_USEC={max(0, round(seconds * 1_000_000))}")

    def watchdog_interval(self) -> float | None:
        """Seconds within which systemd expects a ping, or None if no watchdog applies to us.

        None outside systemd, when ``WatchdogSec=`` is unset, and when ``WATCHDOG_PID`` names another
        process (the variables were inherited from a parent they were meant for).
        """
        return self._watchdog_interval if self._address is not None else None


class WatchdogPinger(Protocol):
    """What :func:`run_watchdog` needs: something that can send one watchdog ping."""

    def watchdog(self) -> bool: ...


async def run_watchdog(notifier: WatchdogPinger, interval: float) -> None:
    """Ping ``WATCHDOG=1`` every ``interval / 2`` seconds until cancelled.

    *interval* is :meth:`SystemdNotifier.watchdog_interval`. Half of it, as sd_watchdog_enabled(3)
    recommends, leaves room for one late wake-up. The pings come from the event loop on purpose: if
    the loop is blocked, they stop, and systemd restarts the daemon.
    """
    if not interval > 0:
        raise ValueError(f"watchdog interval must be positive, got {interval!r}")
    period = interval / 2
    while True:
        notifier.watchdog()
        await asyncio.sleep(period)


def _status_line(text: str | None) -> tuple[str, ...]:
    if text is None:
        return ()
    # The message is newline-separated: a newline in the text would start a bogus assignment.
    return ("STATUS=" + " ".join(text.splitlines()),)


def _parse_address(value: str | None) -> str | None:
    if not value:
        return None
    if value.startswith("@") and len(value) > 1:
        return "\0" + value[1:]  # Linux abstract namespace
    if value.startswith("/"):
        return value
    # e.g. "vsock:…" (systemd ≥ 253 inside VMs): not supported, behave as if not under systemd.
    log.debug("ignoring unsupported NOTIFY_SOCKET", notify_socket=value)
    return None


def _parse_watchdog(*, usec: str | None, pid: str | None) -> float | None:
    if usec is None:
        return None
    try:
        microseconds = int(usec)
        if pid is not None and int(pid) != os.getpid():
            return None
    except ValueError:
        log.debug("ignoring malformed watchdog environment", watchdog_usec=usec, watchdog_pid=pid)
        return None
    if microseconds <= 0:
        return None
    return microseconds / 1_000_000
