"""In-process attempts (noop, echo, sleep, plugins) from Assign to terminal update, in memory."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from jobq.node import LogSink
from jobq.node.allowlist import Allowlist
from jobq.node.attempts import Attempt, AttemptContext
from jobq.node.batching import Flusher
from jobq.node.commands import CommandSpec, EchoSpec, NoopSpec, PluginSpec, SleepSpec
from jobq.node.outbox import Outbox
from jobq.node.plugins import CommandPlugin
from jobq.v1 import node_service_pb2 as pb


async def render(params: dict[str, Any], log: LogSink) -> int:
    await log(f"frame {params['frame']}", "PROGRESS: 50")
    await log("multi\nline")
    return int(params.get("code", 0))


async def crash(params: dict[str, Any], log: LogSink) -> int:
    raise ValueError("bad frame")


async def not_a_code(params: dict[str, Any], log: LogSink) -> int:
    return "yes"  # type: ignore[return-value]


async def forever(params: dict[str, Any], log: LogSink) -> int:
    await log("working")
    await asyncio.Event().wait()
    return 0


PLUGINS: dict[str, CommandPlugin] = {
    "render": render,
    "crash": crash,
    "nocode": not_a_code,
    "forever": forever,
}


def context(tmp_path: Path) -> AttemptContext:
    outbox = Outbox(log_budget_bytes=1 << 20, max_updates=100, hold_s=1)
    outbox.set_connected(True)
    return AttemptContext(
        node_name="n",
        work_root=tmp_path,
        keep_work_dirs=False,
        grace_s=0.5,
        allowlist=Allowlist(),
        base_env={},
        plugins=PLUGINS,
        outbox=outbox,
        flusher=Flusher(interval_s=0.01),
        max_line_bytes=1024,
        batch_lines=100,
        batch_bytes=1 << 16,
    )


def messages(ctx: AttemptContext) -> list[pb.NodeMessage]:
    out = []
    while (item := ctx.outbox.take()) is not None:
        ctx.outbox.sent(item)
        out.append(item.message)
    return out


def start(ctx: AttemptContext, *specs: CommandSpec) -> Attempt:
    attempt = Attempt(task_id="j.1", attempt=1, job_id="j", specs=specs, ctx=ctx, on_done=lambda a: None)
    attempt.task = asyncio.create_task(attempt.run())
    return attempt


async def run(ctx: AttemptContext, *specs: CommandSpec) -> list[pb.NodeMessage]:
    attempt = start(ctx, *specs)
    assert attempt.task is not None
    await asyncio.wait_for(attempt.task, 5)
    return messages(ctx)


def summary(sent: list[pb.NodeMessage]) -> list[Any]:
    out: list[Any] = []
    for m in sent:
        if m.WhichOneof("msg") == "log":
            out.append(list(m.log.lines))
        else:
            out.append(pb.UpdateKind.Name(m.update.kind).removeprefix("UPDATE_KIND_"))
    return out


async def test_noop_echo_sleep(tmp_path: Path) -> None:
    ctx = context(tmp_path)
    sent = await run(ctx, NoopSpec(), EchoSpec("a\nb"), SleepSpec(0.01))
    assert summary(sent) == ["STARTED", ["a", "b"], "COMPLETED"]
    assert sent[-1].update.exit_code == 0
    assert sent[-1].update.progress == 100
    assert list(tmp_path.iterdir()) == []  # no work dir for in-process commands


async def test_plugin_logs_progress_and_exit_code(tmp_path: Path) -> None:
    ctx = context(tmp_path)
    sent = await run(ctx, PluginSpec("render", {"frame": 7, "code": 3}))
    assert summary(sent) == ["STARTED", ["frame 7", "PROGRESS: 50", "multi", "line"], "PROGRESS", "FAILED"]
    assert sent[2].update.progress == 50
    assert sent[-1].update.exit_code == 3
    assert sent[-1].update.message == "command 1/1 (render): exited with code 3"


@pytest.mark.parametrize(
    ("plugin", "message"),
    [
        ("crash", "command 1/1 (crash): raised ValueError: bad frame"),
        ("nocode", "command 1/1 (nocode): returned 'yes', not an exit code"),
    ],
)
async def test_misbehaving_plugins_fail_the_attempt_not_the_node(
    tmp_path: Path, plugin: str, message: str
) -> None:
    sent = await run(context(tmp_path), PluginSpec(plugin, {}))
    assert sent[-1].update.kind == pb.UPDATE_KIND_FAILED
    assert sent[-1].update.message == message


async def test_abort_cancels_a_plugin_and_skips_the_rest(tmp_path: Path) -> None:
    ctx = context(tmp_path)
    attempt = start(ctx, PluginSpec("forever", {}), EchoSpec("never"))
    await asyncio.sleep(0)  # let it start
    attempt.abort(grace_s=1, reason="canceled")
    assert attempt.task is not None
    await asyncio.wait_for(attempt.task, 5)
    sent = messages(ctx)
    assert summary(sent) == ["STARTED", ["working"], "ABORTED"]
    assert sent[-1].update.message == "aborted: canceled"


async def test_abort_interrupts_sleep(tmp_path: Path) -> None:
    ctx = context(tmp_path)
    attempt = start(ctx, SleepSpec(3600))
    await asyncio.sleep(0)
    attempt.abort(grace_s=0, reason="")
    assert attempt.task is not None
    await asyncio.wait_for(attempt.task, 5)
    assert summary(messages(ctx)) == ["STARTED", "ABORTED"]
