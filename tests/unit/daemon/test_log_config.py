"""jobqd's log output: one format for structlog and stdlib records, JSON off a TTY, context carried."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import structlog
from structlog.testing import capture_logs

from jobqd.log_config import (
    bind_context,
    bound_context,
    clear_context,
    configure_logging,
    get_logger,
    reset_logging,
    unbind_context,
)


class _TTY(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def _isolated_logging() -> Iterator[None]:
    clear_context()
    yield
    reset_logging()
    clear_context()


def _lines(stream: io.StringIO) -> list[dict[str, Any]]:
    text = stream.getvalue()
    assert text.endswith("\n")
    return [json.loads(line) for line in text.splitlines()]


def test_json_is_one_object_per_line_with_event_level_timestamp() -> None:
    out = io.StringIO()
    configure_logging(fmt="json", stream=out)
    log = get_logger("jobqd.engine")

    log.info("job admitted", queue="default", tasks=3)
    log.warning("multi\nline event")
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        log.exception("writer crashed")

    first, second, third = _lines(out)
    assert list(first)[:4] == ["timestamp", "level", "logger", "event"]  # readable raw, too
    assert first["event"] == "job admitted"
    assert first["level"] == "info"
    assert first["logger"] == "jobqd.engine"
    assert first["queue"] == "default"
    assert first["tasks"] == 3
    assert first["timestamp"].endswith("Z")  # ISO 8601, UTC
    assert second["event"] == "multi\nline event"
    assert third["level"] == "error"
    assert "RuntimeError: boom" in third["exception"]
    assert "Traceback" in third["exception"]


def test_stdlib_records_go_through_the_same_formatter() -> None:
    out = io.StringIO()
    configure_logging(fmt="json", stream=out)

    logging.getLogger("kubernetes_asyncio.watch").warning("stream closed after %d s", 70)
    logging.getLogger("grpc.aio").error("bad frame", extra={"peer": "ipv4:10.0.0.7:4242"})
    try:
        raise OSError("connection reset")
    except OSError:
        logging.getLogger("asyncio").exception("Task exception was never retrieved")

    (warning, error, crash) = _lines(out)
    assert warning["event"] == "stream closed after 70 s"
    assert warning["level"] == "warning"
    assert warning["logger"] == "kubernetes_asyncio.watch"
    assert warning["timestamp"].endswith("Z")
    assert error["peer"] == "ipv4:10.0.0.7:4242"
    assert error["level"] == "error"
    assert crash["logger"] == "asyncio"
    assert "OSError: connection reset" in crash["exception"]


def test_context_values_appear_on_structlog_and_stdlib_lines() -> None:
    out = io.StringIO()
    configure_logging(fmt="json", stream=out)
    bind_context(node="render-01")

    with bound_context(job_id="01J0", task_id="01J0-7"):
        get_logger("jobqd.nodes").info("task assigned")
        logging.getLogger("aiosqlite").warning("slow commit")
    get_logger("jobqd.nodes").info("heartbeat")
    unbind_context("node")
    get_logger("jobqd.nodes").info("node gone")

    assigned, slow, heartbeat, gone = _lines(out)
    for line in (assigned, slow):
        assert (line["job_id"], line["task_id"], line["node"]) == ("01J0", "01J0-7", "render-01")
    assert heartbeat["node"] == "render-01"
    assert "job_id" not in heartbeat
    assert "node" not in gone


async def test_context_bound_in_one_task_does_not_leak_into_another() -> None:
    out = io.StringIO()
    configure_logging(fmt="json", stream=out)
    go = asyncio.Event()

    async def worker(job_id: str) -> None:
        bind_context(job_id=job_id)
        await go.wait()
        get_logger("jobqd.engine").info("done")

    tasks = [asyncio.create_task(worker(j)) for j in ("a", "b")]
    await asyncio.sleep(0)
    go.set()
    await asyncio.gather(*tasks)
    get_logger("jobqd.engine").info("outside")

    lines = _lines(out)
    assert sorted(str(line.get("job_id")) for line in lines[:2]) == ["a", "b"]
    assert "job_id" not in lines[2]


def test_configuring_twice_replaces_the_handler_instead_of_duplicating_lines() -> None:
    first, second = io.StringIO(), io.StringIO()
    configure_logging(fmt="json", stream=first)
    configure_logging(fmt="json", stream=second)

    get_logger("jobqd").info("once")
    logging.getLogger("asyncio").warning("also once")

    assert first.getvalue() == ""
    assert [line["event"] for line in _lines(second)] == ["once", "also once"]


def test_other_root_handlers_are_left_alone() -> None:
    root = logging.getLogger()
    theirs = logging.NullHandler()
    root.addHandler(theirs)
    try:
        configure_logging(fmt="json", stream=io.StringIO())
        configure_logging(fmt="json", stream=io.StringIO())
        reset_logging()
        assert theirs in root.handlers
    finally:
        root.removeHandler(theirs)


def test_level_filters_structlog_and_stdlib() -> None:
    out = io.StringIO()
    configure_logging(level="WARNING", fmt="json", stream=out)

    get_logger("jobqd").info("hidden")
    logging.getLogger("grpc").info("hidden too")
    get_logger("jobqd").warning("shown")

    assert [line["event"] for line in _lines(out)] == ["shown"]


def test_noisy_libraries_stay_quiet_even_at_debug() -> None:
    out = io.StringIO()
    configure_logging(level="debug", fmt="json", stream=out)

    logging.getLogger("aiosqlite").debug("executing SELECT 1")
    logging.getLogger("hpack.hpack").debug("decoded header")
    get_logger("jobqd.store").debug("batch committed", rows=12)
    logging.getLogger("aiosqlite").warning("still reported")

    assert [line["event"] for line in _lines(out)] == ["batch committed", "still reported"]


def test_auto_picks_json_off_a_tty_and_console_on_a_tty() -> None:
    pipe, tty = io.StringIO(), _TTY()
    configure_logging(stream=pipe)
    get_logger("jobqd").info("to the journal", queue="default")
    configure_logging(stream=tty)
    get_logger("jobqd").info("to a human", queue="default")

    assert _lines(pipe)[0]["event"] == "to the journal"
    human = tty.getvalue()
    assert "to a human" in human
    assert "queue" in human
    assert "default" in human
    with pytest.raises(json.JSONDecodeError):
        json.loads(human.splitlines()[0])


def test_console_renders_exceptions_without_warnings() -> None:
    out = io.StringIO()
    configure_logging(fmt="console", stream=out)
    try:
        raise ValueError("bad spec")
    except ValueError:
        get_logger("jobqd.api").exception("rejected")
    text = out.getvalue()
    assert "rejected" in text
    assert "bad spec" in text
    assert "\x1b[" not in text  # no colour codes when the stream is not a terminal


def test_unknown_level_or_format_is_rejected() -> None:
    with pytest.raises(ValueError, match="log level"):
        configure_logging(level="verbose")
    with pytest.raises(ValueError, match="log format"):
        configure_logging(fmt="xml")  # type: ignore[arg-type]


def test_capture_logs_still_sees_events_after_configure() -> None:
    configure_logging(fmt="json", stream=io.StringIO())
    log = get_logger("jobqd.engine")
    log.info("warm up")  # a cached logger would keep the old chain and escape capture_logs

    with capture_logs() as captured:
        log.info("job completed", tasks=4)

    assert captured == [{"event": "job completed", "tasks": 4, "log_level": "info"}]


def test_reset_restores_structlog_defaults_and_root_level() -> None:
    root = logging.getLogger()
    before = root.level
    configure_logging(level="error", fmt="json", stream=io.StringIO())
    reset_logging()
    assert root.level == before
    assert structlog.is_configured() is False


def test_grpc_failing_to_send_a_status_on_a_dead_stream_is_a_warning_not_an_error() -> None:
    out = io.StringIO()
    configure_logging(fmt="json", stream=out)
    grpc_log = logging.getLogger("grpc._cython.cygrpc")
    try:
        raise RuntimeError('Failed "execute_batch"')
    except RuntimeError:
        grpc_log.exception(
            "ExecuteBatchError raised in core by servicer method [%s]", "/jobq.v1.NodeService/Connect"
        )
        grpc_log.exception("Unexpected [%s] raised by servicer method [%s]", "KeyError", "/x")  # a real one

    (late, real) = _lines(out)
    assert late["level"] == "warning" and "exception" not in late
    assert late["event"] == (
        "a stream ended before its final status could be sent: "
        "ExecuteBatchError raised in core by servicer method [/jobq.v1.NodeService/Connect]"
    )
    assert real["level"] == "error" and "RuntimeError" in real["exception"]
