"""Running assignments: exec output as log chunks, outcomes, refusals, and the in-process commands."""

from __future__ import annotations

import os

from jobq.v1 import node_service_pb2 as pb

from tests.integration.node.peer import FakeJobqd, StartNode, command, eventually, exec_


async def test_exec_output_arrives_as_log_chunks(peer: FakeJobqd, start_node: StartNode) -> None:
    await start_node()
    session = await peer.session()
    script = "echo one; echo two >&2; printf 'no newline'"
    session.assign("t1", exec_("/bin/sh", "-c", script))
    final = await session.final("t1")
    assert session.kinds("t1") == ["STARTED", "COMPLETED"]
    assert final.exit_code == 0
    assert session.log_lines("t1") == ["one", "two", "no newline"]
    # lines are batched: fewer chunks than lines
    assert len(session.log_chunks("t1")) < 3


async def test_commands_run_in_order_and_first_failure_fails_the_attempt(
    peer: FakeJobqd, start_node: StartNode
) -> None:
    await start_node()
    session = await peer.session()
    session.assign(
        "t1",
        exec_("/bin/sh", "-c", "echo first"),
        exec_("/bin/sh", "-c", "echo second; exit 3"),
        exec_("/bin/sh", "-c", "echo never"),
    )
    final = await session.final("t1")
    assert final.kind == pb.UPDATE_KIND_FAILED
    assert final.HasField("exit_code")
    assert final.exit_code == 3
    assert final.message == "command 2/3 (exec /bin/sh): exited with code 3"
    assert session.log_lines("t1") == ["first", "second"]


async def test_killed_by_signal_reports_128_plus_signal(peer: FakeJobqd, start_node: StartNode) -> None:
    await start_node()
    session = await peer.session()
    session.assign("t1", exec_("/bin/sh", "-c", "kill -SEGV $$"))
    final = await session.final("t1")
    assert final.kind == pb.UPDATE_KIND_FAILED
    assert final.exit_code == 128 + 11
    assert "killed by SIGSEGV" in final.message


async def test_program_outside_the_allowlist_is_refused(peer: FakeJobqd, start_node: StartNode) -> None:
    await start_node("--allow-command", "/bin/echo")
    session = await peer.session()
    session.assign("t1", exec_("/bin/rm", "-rf", "/tmp/nothing-here"))
    session.assign("t2", exec_("/bin/echo", "allowed"))
    final = await session.final("t1")
    assert final.kind == pb.UPDATE_KIND_FAILED
    assert final.message == "command not allowed: /bin/rm (allowed: /bin/echo)"
    assert not final.HasField("exit_code")
    assert (await session.final("t2")).kind == pb.UPDATE_KIND_COMPLETED
    assert session.log_lines("t2") == ["allowed"]


async def test_missing_program_fails_with_127(peer: FakeJobqd, start_node: StartNode) -> None:
    await start_node()
    session = await peer.session()
    session.assign("t1", exec_("no-such-program-anywhere"))
    final = await session.final("t1")
    assert (final.kind, final.exit_code) == (pb.UPDATE_KIND_FAILED, 127)
    assert final.message == "command not found: no-such-program-anywhere"


async def test_environment_is_scrubbed_and_describes_the_task(peer: FakeJobqd, start_node: StartNode) -> None:
    node = await start_node(env={"SECRET_TOKEN": "hunter2", "LANG": "C.UTF-8"})
    session = await peer.session()
    session.assign("job7.3", exec_("/usr/bin/env", env={"MINE": "yes"}), attempt=2, job_id="job7")
    await session.final("job7.3", attempt=2)
    env = dict(line.split("=", 1) for line in session.log_lines("job7.3", attempt=2))
    assert "SECRET_TOKEN" not in env
    assert env["LANG"] == "C.UTF-8"
    assert env["PATH"] == os.environ["PATH"]
    assert env["MINE"] == "yes"
    assert (env["JOBQ_TASK_ID"], env["JOBQ_JOB_ID"], env["JOBQ_ATTEMPT"]) == ("job7.3", "job7", "2")
    assert env["JOBQ_WORK_DIR"] == str(node.work_dir / "job7.3.2")


async def test_work_dir_is_per_attempt_and_removed_afterwards(peer: FakeJobqd, start_node: StartNode) -> None:
    node = await start_node()
    session = await peer.session()
    session.assign("t1", exec_("/bin/sh", "-c", "pwd; touch left-behind"))
    await session.final("t1")
    assert session.log_lines("t1") == [str(node.work_dir / "t1.1")]
    assert not (node.work_dir / "t1.1").exists()


async def test_keep_work_dirs(peer: FakeJobqd, start_node: StartNode) -> None:
    node = await start_node("--keep-work-dirs")
    session = await peer.session()
    session.assign("t1", exec_("/bin/sh", "-c", "echo data > out.txt"))
    await session.final("t1")
    assert (node.work_dir / "t1.1" / "out.txt").read_text() == "data\n"


async def test_in_process_commands(peer: FakeJobqd, start_node: StartNode) -> None:
    await start_node()
    session = await peer.session()
    session.assign(
        "t1", command("noop"), command("echo", message="hello\nPROGRESS: 40"), command("sleep", seconds=0.1)
    )
    final = await session.final("t1")
    assert final.kind == pb.UPDATE_KIND_COMPLETED
    assert session.log_lines("t1") == ["hello", "PROGRESS: 40"]
    assert [u.progress for u in session.updates("t1") if u.kind == pb.UPDATE_KIND_PROGRESS] == [40]


async def test_progress_lines_become_progress_updates(peer: FakeJobqd, start_node: StartNode) -> None:
    await start_node()
    session = await peer.session()
    session.assign(
        "t1", exec_("/bin/sh", "-c", "echo PROGRESS: 25; sleep 0.3; echo 'PROGRESS: 75'; sleep 0.3")
    )
    await session.final("t1")
    progress = [u.progress for u in session.updates("t1") if u.kind == pb.UPDATE_KIND_PROGRESS]
    assert progress == [25, 75]
    assert session.kinds("t1") == ["STARTED", "PROGRESS", "PROGRESS", "COMPLETED"]


async def test_invalid_command_fails_before_anything_runs(peer: FakeJobqd, start_node: StartNode) -> None:
    await start_node()
    session = await peer.session()
    session.assign("t1", exec_("/bin/echo", "should not run"), command("exec", args=["x"]))
    final = await session.final("t1")
    assert final.kind == pb.UPDATE_KIND_FAILED
    assert final.message.startswith("command 2/2 (exec): unknown parameter(s) args")
    assert session.kinds("t1") == ["FAILED"]
    assert session.log_lines("t1") == []


async def test_shell_refused_unless_allowed(peer: FakeJobqd, start_node: StartNode) -> None:
    await start_node()
    session = await peer.session()
    session.assign("t1", command("shell", script="echo hi"))
    final = await session.final("t1")
    assert final.kind == pb.UPDATE_KIND_FAILED
    assert "shell commands are not allowed on this node (start it with --allow-shell)" in final.message


async def test_shell_when_allowed(peer: FakeJobqd, start_node: StartNode) -> None:
    await start_node("--allow-shell")
    session = await peer.session()
    assert "shell" in session.hello.command_types
    session.assign("t1", command("shell", script="for i in 1 2; do echo line$i; done"))
    assert (await session.final("t1")).kind == pb.UPDATE_KIND_COMPLETED
    assert session.log_lines("t1") == ["line1", "line2"]


async def test_over_assignment_fails_the_extra_attempt(peer: FakeJobqd, start_node: StartNode) -> None:
    await start_node(slots=1)
    session = await peer.session()
    session.assign("t1", command("sleep", seconds=30))
    session.assign("t2", command("noop"))
    final = await session.final("t2")
    assert final.kind == pb.UPDATE_KIND_FAILED
    assert "over capacity: all 1 slots are busy" in final.message
    session.abort("t1")
    assert (await session.final("t1")).kind == pb.UPDATE_KIND_ABORTED


async def test_many_noops(peer: FakeJobqd, start_node: StartNode) -> None:
    await start_node(slots=4)
    session = await peer.session()
    for i in range(500):
        session.assign(f"t{i}", command("noop"))

    def completed() -> int:
        updates = [m.update for m in session.received if m.WhichOneof("msg") == "update"]
        return sum(1 for u in updates if u.kind == pb.UPDATE_KIND_COMPLETED)

    await eventually(lambda: completed() == 500, what="500 completed noops")
    assert session.kinds("t499") == ["STARTED", "COMPLETED"]


async def test_allowlist_from_the_environment(peer: FakeJobqd, start_node: StartNode) -> None:
    await start_node(env={"JOBQ_NODE_ALLOW_COMMAND": "/bin/echo /usr/bin/e*"})
    session = await peer.session()
    session.assign("t1", exec_("/bin/rm", "x"))
    final = await session.final("t1")
    assert final.message == "command not allowed: /bin/rm (allowed: /bin/echo, /usr/bin/e*)"
