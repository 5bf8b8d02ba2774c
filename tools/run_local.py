"""`make run`: jobqd with embedded admission and data in a local directory, plus one local jobq-node.

Both run in the foreground of this terminal with their logs interleaved; Ctrl-C (or SIGTERM) stops
the node first, then the daemon, each gracefully.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

BIN = Path(sys.executable).parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--listen", default="127.0.0.1:7070")
    parser.add_argument("--data-dir", default=".jobq")
    parser.add_argument("--slots", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--node-name", default=f"{socket.gethostname()}-local")
    args = parser.parse_args()
    data = Path(args.data_dir)
    data.mkdir(parents=True, exist_ok=True)
    addr_file = data / "jobqd.addr"
    addr_file.unlink(missing_ok=True)
    daemon = subprocess.Popen([str(BIN / "jobqd"), "--listen", args.listen, "--data-dir", str(data)])
    deadline = time.monotonic() + 30
    while not addr_file.exists():
        if daemon.poll() is not None or time.monotonic() > deadline:
            print("jobqd did not start; see its log above", file=sys.stderr)
            daemon.terminate()
            return 1
        time.sleep(0.05)
    address = addr_file.read_text().strip()
    node = subprocess.Popen(
        [
            str(BIN / "jobq-node"),
            "--server",
            address,
            "--name",
            args.node_name,
            "--slots",
            str(args.slots),
            "--work-dir",
            str(data / "node-work"),
        ]
    )
    print(
        f"\njobq is running: jobqd on {address}, node {args.node_name} with {args.slots} slots.\n"
        f"In another terminal:  export JOBQ_SERVER={address}; .venv/bin/jobqctl submit -- echo hello\n"
        "Ctrl-C stops both.\n",
        file=sys.stderr,
    )
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    while not stopping and daemon.poll() is None and node.poll() is None:
        time.sleep(0.2)
    for proc in (node, daemon):
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
