"""Real processes for benchmarks: a jobqd on a free loopback port and jobq-node processes."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def jobqd(*extra: str, data_dir: Path | None = None) -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="jobq-bench-") as tmp:
        data = data_dir or Path(tmp) / "data"
        data.mkdir(parents=True, exist_ok=True)
        port = free_port()
        log = open(Path(tmp) / "jobqd.log", "wb")  # noqa: SIM115
        proc = subprocess.Popen(
            [str(BIN / "jobqd"), "--listen", f"127.0.0.1:{port}", "--data-dir", str(data), "--log-format", "json",
             "--log-level", "warning", *extra],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 30
            while not (data / "jobqd.addr").exists():
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        "jobqd did not start: " + (Path(tmp) / "jobqd.log").read_text()[-2000:]
                    )
                time.sleep(0.02)
            yield f"127.0.0.1:{port}"
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
            log.close()


@contextlib.contextmanager
def nodes(address: str, count: int, slots: int, *extra: str) -> Iterator[list[subprocess.Popen[bytes]]]:
    with tempfile.TemporaryDirectory(prefix="jobq-bench-nodes-") as tmp:
        procs = [
            subprocess.Popen(
                [
                    str(BIN / "jobq-node"),
                    "--server",
                    address,
                    "--name",
                    f"bench-{i}",
                    "--slots",
                    str(slots),
                    "--work-dir",
                    f"{tmp}/w{i}",
                    "--log-level",
                    "warning",
                    *extra,
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
            for i in range(count)
        ]
        try:
            yield procs
        finally:
            for p in procs:
                p.send_signal(signal.SIGTERM)
            for p in procs:
                try:
                    p.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    p.kill()
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(p.pid, signal.SIGKILL)


def run_python(code: str, args: Sequence[str]) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE, text=True)
