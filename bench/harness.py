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


LOADGEN_SRC = Path(__file__).parent / "loadgen"


def loadgen_binary() -> Path | None:
    """bench/loadgen built with the machine's Go toolchain, cached by source hash + Go version;
    None (with a note on stderr) when Go is missing or the build fails."""
    import hashlib
    import shutil

    go = shutil.which("go")
    if go is None:
        print("loadgen: no Go toolchain; native-client figures skipped", file=sys.stderr, flush=True)
        return None
    version = subprocess.run(
        [go, "env", "GOVERSION"], capture_output=True, text=True, check=False
    ).stdout.strip()
    digest = hashlib.sha256(version.encode())
    for name in ("go.mod", "go.sum", "main.go"):
        digest.update((LOADGEN_SRC / name).read_bytes())
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "jobq-bench"
    binary = cache / f"loadgen-{digest.hexdigest()[:16]}"
    if binary.exists():
        return binary
    cache.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    built = subprocess.run(
        [go, "build", "-o", str(binary), "."], cwd=LOADGEN_SRC, capture_output=True, text=True, check=False
    )
    if built.returncode != 0:
        print(f"loadgen: go build failed; native-client figures skipped:\n{built.stderr[-2000:]}",
              file=sys.stderr, flush=True)  # fmt: skip
        return None
    print(f"loadgen: built in {time.perf_counter() - t0:.1f} s → {binary}", file=sys.stderr, flush=True)
    return binary


def native_rate(
    binary: Path,
    address: str,
    method: str,
    request: bytes,
    *,
    seconds: float,
    concurrency: int = 32,
    connections: int = 4,
) -> float:
    """Calls/s of `method` from bench/loadgen: `concurrency` callers over `connections` HTTP/2
    connections, each sending the pre-encoded `request` back to back. Fails on any error reply."""
    with tempfile.NamedTemporaryFile(prefix="jobq-loadgen-", suffix=".bin") as f:
        f.write(request)
        f.flush()
        out = subprocess.run(
            [str(binary), "-addr", address, "-method", method, "-request", f.name, "-seconds", str(seconds),
             "-concurrency", str(concurrency), "-connections", str(connections)],
            capture_output=True, text=True, check=False, timeout=seconds + 120,
        )  # fmt: skip
    if out.returncode != 0:
        raise RuntimeError(f"loadgen failed: {out.stderr[-2000:]}")
    ok, failed, elapsed = out.stdout.split()
    if int(failed):
        raise RuntimeError(f"loadgen: {failed} of {int(ok) + int(failed)} calls failed: {out.stderr[-500:]}")
    return int(ok) / float(elapsed)
