"""Splitting child output into lines, truncating long ones, and PROGRESS lines."""

from __future__ import annotations

import pytest
from jobq.node.output import (
    TRUNCATED_MARKER,
    LineSplitter,
    last_progress,
    parse_progress,
    text_lines,
    truncate_line,
)


@pytest.mark.parametrize(
    ("line", "value"),
    [
        ("PROGRESS: 42", 42),
        ("PROGRESS:0", 0),
        ("PROGRESS: 100", 100),
        ("  PROGRESS: 7  ", 7),
        ("PROGRESS: 42.9", 42),
        ("PROGRESS: 42%", 42),
        ("PROGRESS: 101", None),
        ("PROGRESS: -1", None),
        ("PROGRESS: 1000", None),
        ("PROGRESS:", None),
        ("PROGRESS: half", None),
        ("progress: 42", None),
        ("Rendering... PROGRESS: 42", None),
        ("PROGRESS: 42 frames", None),
        ("hello", None),
    ],
)
def test_parse_progress(line: str, value: int | None) -> None:
    assert parse_progress(line) == value


def test_last_progress_takes_the_latest() -> None:
    assert last_progress(["PROGRESS: 10", "x", "PROGRESS: 30", "y"]) == 30
    assert last_progress(["x", "y"]) is None


def test_lines_split_across_chunks_are_joined() -> None:
    splitter = LineSplitter()
    assert splitter.feed(b"hel") == []
    assert splitter.has_partial
    assert splitter.feed(b"lo\nwor") == ["hello"]
    assert splitter.feed(b"ld\n\nlast") == ["world", ""]
    assert splitter.close() == ["last"]
    assert splitter.close() == []


def test_many_lines_in_one_chunk() -> None:
    splitter = LineSplitter()
    assert splitter.feed(b"a\nb\nc\n") == ["a", "b", "c"]
    assert not splitter.has_partial
    assert splitter.close() == []


def test_invalid_utf8_is_replaced_not_fatal() -> None:
    splitter = LineSplitter()
    # a multi-byte character split over two chunks survives; junk bytes become U+FFFD
    assert splitter.feed("é".encode()[:1]) == []
    assert splitter.feed("é".encode()[1:] + b"\n\xff\xfe\n") == ["é", "\ufffd\ufffd"]


def test_raw_lines_are_kept_as_they_are() -> None:
    splitter = LineSplitter()
    assert splitter.feed(b"  spaced \t\r\n") == ["  spaced \t\r"]


def test_long_line_in_one_chunk_is_truncated() -> None:
    splitter = LineSplitter(max_line_bytes=10)
    assert splitter.feed(b"short\n" + b"x" * 25 + b"\nok\n") == ["short", "x" * 10 + TRUNCATED_MARKER, "ok"]


def test_long_line_over_many_chunks_keeps_memory_bounded() -> None:
    splitter = LineSplitter(max_line_bytes=10)
    for _ in range(1000):
        assert splitter.feed(b"y" * 1000) == []
    assert splitter.feed(b"yy\nnext\n") == ["y" * 10 + TRUNCATED_MARKER, "next"]


def test_long_line_without_newline_at_eof() -> None:
    splitter = LineSplitter(max_line_bytes=4)
    splitter.feed(b"abcdefgh")
    assert splitter.close() == ["abcd" + TRUNCATED_MARKER]


def test_line_of_exactly_the_limit_is_kept_whole() -> None:
    splitter = LineSplitter(max_line_bytes=4)
    assert splitter.feed(b"abcd\n") == ["abcd"]
    splitter.feed(b"ab")
    assert splitter.feed(b"cd\n") == ["abcd"]


def test_text_lines_split_and_truncate() -> None:
    assert text_lines("a\nb") == ["a", "b"]
    assert text_lines("x" * 20, max_bytes=8) == ["x" * 8 + TRUNCATED_MARKER]
    assert truncate_line("short") == "short"
