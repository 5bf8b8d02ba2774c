"""Node isolation: RLIMITs from the task's memory request and from --rlimit, the run-as user, the
environment pass-through list, and the refusals at start when the node cannot isolate as asked."""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from jobq.v1 import node_service_pb2 as pb

from tests.integration.node.peer import FakeJobqd, PeerSession, StartNode, eventually, exec_

MiB = 2**20
AS_ROOT = pytest.mark.skipif(os.geteuid() != 0, reason="switching users needs root")


def limits(lines: list[str]) -> dict[str, tuple[str, str]]:
    """/proc/self/limits as {"Max data size": (soft, hard)}."""
    out: dict[str, tuple[str, str]] = {}
    for line in lines[1:]:
        name, soft, hard = line[:26].strip(), *line[26:].split()[:2]
        out[name] = (soft, hard)
    return out


async def proc_limits(
    session: PeerSession, task_id: str, resources: dict[str, str] | None = None
) -> dict[str, tuple[str, str]]:
    """The limits a command of ``task_id`` ran with."""
    session.assign(task_id, exec_("/bin/cat", "/proc/self/limits"), resources=resources)
    final = await session.final(task_id)
    assert final.kind == pb.UPDATE_KIND_COMPLETED, final.message
    return limits(session.log_lines(task_id))


async def test_memory_request_limits_the_data_segment(peer: FakeJobqd, start_node: StartNode) -> None:
    await start_node()
    session = await peer.session()
    # jobqd sends quantities as it stores them: plain bytes
    got = await proc_limits(session, "t1", {"cpu": "1", "memory": str(256 * MiB)})
    assert got["Max data size"] == (str(256 * MiB), str(256 * MiB))
    assert got["Max address space"] == ("unlimited", "unlimited")
    # no memory request: nothing limited, and the command is not wrapped at all
    got = await proc_limits(session, "t2", {"cpu": "1"})
    assert got["Max data size"] == ("unlimited", "unlimited")


async def test_a_task_allocating_beyond_its_request_fails(peer: FakeJobqd, start_node: StartNode) -> None:
    await start_node()
    session = await peer.session()
    grab = "import sys; b = bytearray(512 * 2**20); print('got it')"
    session.assign("big", exec_(sys.executable, "-c", grab), resources={"memory": str(128 * MiB)})
    session.assign("fits", exec_(sys.executable, "-c", grab), resources={"memory": str(1024 * MiB)})
    final = await session.final("big")
    assert (final.kind, final.exit_code) == (pb.UPDATE_KIND_FAILED, 1)
    assert "MemoryError" in "\n".join(session.log_lines("big"))
    assert (await session.final("fits")).kind == pb.UPDATE_KIND_COMPLETED
    assert session.log_lines("fits") == ["got it"]


@pytest.mark.parametrize(
    ("mode", "address_space", "data"),
    [
        ("as", str(512 * MiB), "unlimited"),
        ("off", "unlimited", "unlimited"),
        ("data", "unlimited", str(512 * MiB)),
    ],
)
async def test_memory_limit_modes(
    peer: FakeJobqd, start_node: StartNode, mode: str, address_space: str, data: str
) -> None:
    await start_node("--memory-limit", mode)
    got = await proc_limits(await peer.session(), "t1", {"memory": str(512 * MiB)})
    assert got["Max address space"] == (address_space, address_space)
    assert got["Max data size"] == (data, data)


async def test_fixed_rlimits_apply_to_every_task_and_cap_the_request(
    peer: FakeJobqd, start_node: StartNode
) -> None:
    await start_node("--rlimit", "core=0", "--rlimit", "NOFILE=64", "--rlimit", "data=100Mi")
    session = await peer.session()
    got = await proc_limits(session, "t1")
    assert got["Max core file size"] == ("0", "0")
    assert got["Max open files"] == ("64", "64")
    assert got["Max data size"] == (str(100 * MiB), str(100 * MiB))
    # a larger request does not lift the node's ceiling; a smaller one lowers it
    assert (await proc_limits(session, "t2", {"memory": str(1024 * MiB)}))["Max data size"][0] == str(
        100 * MiB
    )
    assert (await proc_limits(session, "t3", {"memory": str(10 * MiB)}))["Max data size"][0] == str(10 * MiB)


async def test_limited_commands_keep_their_process_group_and_can_be_aborted(
    peer: FakeJobqd, start_node: StartNode
) -> None:
    await start_node()
    session = await peer.session()
    session.assign("t1", exec_("/bin/sh", "-c", "echo $$; sleep 60"), resources={"memory": str(64 * MiB)})
    await eventually(lambda: session.log_lines("t1"), what="the shell's pid")
    pid = int(session.log_lines("t1")[0])
    assert os.getpgid(pid) == pid  # prlimit exec'd the command: same process, its own group
    session.abort("t1")
    assert (await session.final("t1")).kind == pb.UPDATE_KIND_ABORTED


async def test_pass_env_adds_to_the_pass_through_list(peer: FakeJobqd, start_node: StartNode) -> None:
    await start_node("--pass-env", "FARM_*", "--pass-env", "LICENSE_SERVER",
                     env={"FARM_SITE": "b", "LICENSE_SERVER": "lic:27000", "OTHER": "x"})  # fmt: skip
    session = await peer.session()
    session.assign("t1", exec_("/usr/bin/env"))
    await session.final("t1")
    env = dict(line.split("=", 1) for line in session.log_lines("t1"))
    assert (env["FARM_SITE"], env["LICENSE_SERVER"]) == ("b", "lic:27000")
    assert "OTHER" not in env


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--rlimit", "bogus=1"), "--rlimit 'bogus=1': expected NAME=VALUE with NAME one of as, core"),
        (("--rlimit", "nofile=lots"), "--rlimit 'nofile=lots': 'lots' is not an amount"),
        (("--memory-limit", "rss"), "Invalid value for '--memory-limit'"),
        (("--run-as", "no-such-user-here"), "--run-as 'no-such-user-here': no such user on this machine"),
        (("--tls-cert", "/etc/hostname"), "--tls-cert and --tls-key: give both (mutual TLS) or neither"),
    ],
)
async def test_bad_isolation_options_are_refused_at_start(
    start_node: StartNode, args: tuple[str, ...], message: str
) -> None:
    node = await start_node(*args)
    assert await node.exited() == 2
    assert message in node.log_path.read_text()


async def test_limits_need_prlimit(start_node: StartNode, tmp_path: Path) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    node = await start_node(env={"PATH": str(empty)})
    assert await node.exited() == 2
    assert "resource limits need util-linux prlimit" in node.log_path.read_text()


@pytest.fixture
def shared_work_dir() -> Iterator[Path]:
    """A work dir other users can reach (pytest's tmp_path is private to root)."""
    with tempfile.TemporaryDirectory(prefix="jobq-runas-") as tmp:
        os.chmod(tmp, 0o711)
        yield Path(tmp) / "work"


@AS_ROOT
async def test_run_as_switches_user_groups_home_and_work_dir_owner(
    peer: FakeJobqd, start_node: StartNode, shared_work_dir: Path
) -> None:
    node = await start_node("--run-as", "nobody", "--work-dir", str(shared_work_dir))
    session = await peer.session()
    script = 'id -u; id -g; echo "$HOME $USER"; stat -c %u .; touch made-here && echo wrote; touch /root/x 2>/dev/null || echo denied'
    session.assign("t1", exec_("/bin/sh", "-c", script))
    final = await session.final("t1")
    assert final.kind == pb.UPDATE_KIND_COMPLETED, (final.message, session.log_lines("t1"))
    assert session.log_lines("t1") == ["65534", "65534", "/nonexistent nobody", "65534", "wrote", "denied"]
    assert not (shared_work_dir / "t1.1").exists()  # removed afterwards, files of the user included
    assert oct(shared_work_dir.stat().st_mode & 0o777) == oct(0o711)
    assert node.proc.returncode is None


@AS_ROOT
async def test_run_as_refuses_a_work_dir_the_user_cannot_reach(
    start_node: StartNode, shared_work_dir: Path
) -> None:
    private = shared_work_dir.parent / "private"
    private.mkdir(mode=0o700)
    node = await start_node("--run-as", "nobody", "--work-dir", str(private / "work"))
    assert await node.exited() == 2
    assert f"nobody cannot reach the work dir {private / 'work'} ({private} is not searchable for it)" in (
        node.log_path.read_text()
    )


@pytest.mark.skipif(os.geteuid() == 0, reason="root may switch")
async def test_run_as_needs_root(start_node: StartNode) -> None:
    node = await start_node("--run-as", "nobody")
    assert await node.exited() == 2
    assert "switching users needs the node to run as root" in node.log_path.read_text()
