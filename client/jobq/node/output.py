"""Turning a child's output bytes into log lines, and spotting ``PROGRESS:`` lines in them.

A task may print anything: gigabytes, binary junk, one line without a newline. Output is split
into complete lines (without the newline), decoded as UTF-8 with replacement characters (protobuf
strings must be valid UTF-8), and absurdly long lines are cut so one line can never exhaust memory.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

TRUNCATED_MARKER = " [line truncated by jobq-node]"

MAX_LINE_BYTES = 64 * 1024 - 64
"""Longest line kept, in bytes; the rest of the line is dropped and a marker appended. Just under
64 KiB, so a truncated line with its marker still fits jobqd's 64 KiB per line."""

_PROGRESS = re.compile(r"\s*PROGRESS:\s*(\d{1,3}(?:\.\d*)?)\s*%?\s*")
_PROGRESS_TOKEN = "PROGRESS:"


def parse_progress(line: str) -> int | None:
    """The percentage of a ``PROGRESS: <0-100>`` line, or None if the line is not one.

    Accepted: ``PROGRESS: 42``, ``PROGRESS:42``, ``PROGRESS: 42.5`` (rounded down), ``PROGRESS: 42%``,
    with surrounding whitespace. Values above 100 are not progress.
    """
    if _PROGRESS_TOKEN not in line:
        return None
    match = _PROGRESS.fullmatch(line)
    if match is None:
        return None
    value = int(float(match.group(1)))
    return value if value <= 100 else None


def last_progress(lines: Sequence[str]) -> int | None:
    """The value of the last ``PROGRESS:`` line among ``lines``, or None."""
    for line in reversed(lines):
        value = parse_progress(line)
        if value is not None:
            return value
    return None


def truncate_line(line: str, max_bytes: int = MAX_LINE_BYTES) -> str:
    """``line`` cut to about ``max_bytes`` UTF-8 bytes (for lines that do not come from a pipe)."""
    if len(line) <= max_bytes // 4:  # cheap: even 4-byte characters fit
        return line
    encoded = line.encode("utf-8", "replace")
    if len(encoded) <= max_bytes:
        return line
    return encoded[:max_bytes].decode("utf-8", "replace") + TRUNCATED_MARKER


def text_lines(text: str, max_bytes: int = MAX_LINE_BYTES) -> list[str]:
    """A message (e.g. of ``echo``) as log lines: split at newlines, each line truncated."""
    return [truncate_line(line, max_bytes) for line in text.split("\n")]


class LineSplitter:
    """Incremental splitter: feed it chunks of bytes, get complete decoded lines back.

    Memory is bounded by ``max_line_bytes``: a line longer than that keeps only its first
    ``max_line_bytes`` bytes, and the rest is skipped until the next newline.
    """

    def __init__(self, max_line_bytes: int = MAX_LINE_BYTES) -> None:
        if max_line_bytes < 1:
            raise ValueError("max_line_bytes must be positive")
        self._max = max_line_bytes
        self._partial = bytearray()
        self._overflow = False

    @property
    def has_partial(self) -> bool:
        """Whether an unfinished line is pending (its rest may come with the next chunk)."""
        return bool(self._partial) or self._overflow

    def feed(self, data: bytes) -> list[str]:
        """The lines completed by ``data``."""
        last_nl = data.rfind(b"\n")
        if last_nl < 0:
            self._add_partial(data)
            return []
        first_nl = data.find(b"\n")
        lines = [self._finish_partial(data[:first_nl])]
        if first_nl < last_nl:
            lines.extend(self._decode_block(data[first_nl + 1 : last_nl]))
        self._add_partial(data[last_nl + 1 :])
        return lines

    def close(self) -> list[str]:
        """At end of stream: the last line if it had no newline."""
        if not self.has_partial:
            return []
        return [self._finish_partial(b"")]

    def _add_partial(self, data: bytes) -> None:
        if self._overflow or not data:
            return
        room = self._max - len(self._partial)
        if len(data) > room:
            self._partial += data[:room]
            self._overflow = True
        else:
            self._partial += data

    def _finish_partial(self, tail: bytes) -> str:
        if not self._partial and not self._overflow:
            return self._decode_line(tail)
        self._add_partial(tail)
        line = self._partial.decode("utf-8", "replace")
        if self._overflow:
            line += TRUNCATED_MARKER
        self._partial = bytearray()
        self._overflow = False
        return line

    def _decode_block(self, block: bytes) -> list[str]:
        # Fast path: decode the whole block at once (no newline byte occurs inside a multi-byte
        # UTF-8 sequence, so this equals decoding line by line) unless a line may be too long.
        if len(block) <= self._max:
            return block.decode("utf-8", "replace").split("\n")
        parts = block.split(b"\n")
        if max(map(len, parts)) <= self._max:
            return block.decode("utf-8", "replace").split("\n")
        return [self._decode_line(part) for part in parts]

    def _decode_line(self, raw: bytes) -> str:
        if len(raw) <= self._max:
            return raw.decode("utf-8", "replace")
        return raw[: self._max].decode("utf-8", "replace") + TRUNCATED_MARKER
