"""Per-attempt task log files, appended as nodes stream lines, tailed and followed by clients.

Files, not rows: logs are big, append-only and read rarely, which is what a file is good at, and
keeping them out of SQLite keeps the state database small and its commits fast. Each file is
capped; past the cap one marker line says what was dropped.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import shutil
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import IO

from jobqd.domain.errors import NotFound
from jobqd.domain.model import Job


class _Follow:
    __slots__ = ("changed", "ended")

    def __init__(self) -> None:
        self.changed = asyncio.Event()
        self.ended = False


class LogStore:
    def __init__(self, root: Path, *, max_bytes: int = 64 * 1024 * 1024, max_open: int = 256) -> None:
        self.root = root
        self.max_bytes = max_bytes
        self._open: collections.OrderedDict[tuple[str, int, int], tuple[IO[bytes], int]] = (
            collections.OrderedDict()
        )
        self._max_open = max_open
        self._follows: dict[tuple[str, int, int], list[_Follow]] = {}
        root.mkdir(parents=True, exist_ok=True)

    def path(self, job_id: str, pos: int, attempt: int) -> Path:
        return self.root / job_id / f"{pos}.{attempt}.log"

    def append(self, job_id: str, pos: int, attempt: int, lines: Iterable[str]) -> None:
        key = (job_id, pos, attempt)
        entry = self._open.pop(key, None)
        if entry is None:
            p = self.path(job_id, pos, attempt)
            p.parent.mkdir(parents=True, exist_ok=True)
            new: IO[bytes] = open(p, "ab")  # noqa: SIM115 - kept open across appends (LRU below)
            entry = (new, new.tell())
        fh, size = entry
        data = "".join(f"{line}\n" for line in lines).encode("utf-8", "replace")
        if size < self.max_bytes:
            if size + len(data) > self.max_bytes:
                data = data[: self.max_bytes - size]
                data = data[: data.rfind(b"\n") + 1] + b"[jobq: log truncated at the size limit]\n"
                size = self.max_bytes
            else:
                size += len(data)
            fh.write(data)
            fh.flush()
        self._open[key] = (fh, size)
        while len(self._open) > self._max_open:
            _, (old, _) = self._open.popitem(last=False)
            old.close()
        self._notify(key, ended=False)

    def end(self, job_id: str, pos: int, attempt: int) -> None:
        """The attempt finished: close its file and end followers."""
        key = (job_id, pos, attempt)
        entry = self._open.pop(key, None)
        if entry is not None:
            entry[0].close()
        self._notify(key, ended=True)

    def _notify(self, key: tuple[str, int, int], *, ended: bool) -> None:
        for f in self._follows.get(key, ()):
            f.ended = f.ended or ended
            f.changed.set()

    def remove_job(self, job_id: str) -> None:
        for key in [k for k in self._open if k[0] == job_id]:
            self._open.pop(key)[0].close()
        shutil.rmtree(self.root / job_id, ignore_errors=True)

    def close(self) -> None:
        for fh, _ in self._open.values():
            fh.close()
        self._open.clear()

    async def tail(
        self, *, job: Job, pos: int, attempt: int, lines: int, follow: bool
    ) -> AsyncIterator[tuple[int, list[str]]]:
        task = job.peek(pos)
        latest = task.attempt if task is not None else 0
        attempt = attempt or latest
        if attempt == 0 or attempt > latest:
            raise NotFound(
                "log", f"{job.task_id(pos)} attempt {attempt or 'latest'} (the task has not run yet)"
            )
        p = self.path(job.id, pos, attempt)
        key = (job.id, pos, attempt)
        f = _Follow()
        self._follows.setdefault(key, []).append(f)
        try:
            running = task is not None and task.attempt == attempt and task.status.value == "active"
            f.ended = not running
            offset, first = _last_lines(p, lines)
            if first:
                yield attempt, first
            while follow and not f.ended:
                f.changed.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(f.changed.wait(), timeout=5.0)
                offset, more = _read_from(p, offset)
                if more:
                    yield attempt, more
                current = job.peek(pos)
                if current is None or current.attempt != attempt or current.status.value != "active":
                    f.ended = True
            if follow:
                _, rest = _read_from(p, offset)
                if rest:
                    yield attempt, rest
        finally:
            follows = self._follows.get(key, [])
            with contextlib.suppress(ValueError):
                follows.remove(f)
            if not follows:
                self._follows.pop(key, None)


def _last_lines(p: Path, n: int) -> tuple[int, list[str]]:
    try:
        size = p.stat().st_size
    except FileNotFoundError:
        return 0, []
    with open(p, "rb") as fh:
        # read backwards in blocks until enough newlines are seen
        block = 64 * 1024
        pos = size
        data = b""
        while pos > 0 and data.count(b"\n") <= n:
            step = min(block, pos)
            pos -= step
            fh.seek(pos)
            data = fh.read(step) + data
    text = data.decode("utf-8", "replace")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return size, lines[-n:] if n else lines


def _read_from(p: Path, offset: int) -> tuple[int, list[str]]:
    try:
        with open(p, "rb") as fh:
            fh.seek(offset)
            data = fh.read()
    except FileNotFoundError:
        return offset, []
    cut = data.rfind(b"\n") + 1
    if cut == 0:
        return offset, []
    return offset + cut, data[:cut].decode("utf-8", "replace").split("\n")[:-1]
