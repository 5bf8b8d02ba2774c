"""Pure parts of node isolation: rlimit parsing and merging, the prlimit argv, run-as resolution."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from jobq.node.identity import RunAs, resolve_run_as, unreachable_parent
from jobq.node.limits import LimitSettings, limits_for, memory_bytes, parse_amount, parse_rlimit, wrap

MiB = 2**20


@pytest.mark.parametrize(
    ("text", "value"),
    [("0", 0), ("4096", 4096), ("512Mi", 512 * MiB), ("1.5G", 1_500_000_000), ("2k", 2000), ("1.0000001", 2)],
)
def test_amounts(text: str, value: int) -> None:
    assert parse_amount(text) == value


@pytest.mark.parametrize("text", ["", "-1", "1e3", "lots", "1 Gi", "1m", "0x10"])
def test_bad_amounts(text: str) -> None:
    with pytest.raises(ValueError, match="is not an amount"):
        parse_amount(text)


def test_rlimit_names_are_checked_and_case_folded() -> None:
    assert parse_rlimit("NOFILE=1024") == ("nofile", 1024)
    assert parse_rlimit(" core = 0") == ("core", 0)
    with pytest.raises(ValueError, match="NAME one of as, core, cpu, data"):
        parse_rlimit("rss=1")
    with pytest.raises(ValueError, match="expected NAME=VALUE"):
        parse_rlimit("nofile")
    with pytest.raises(ValueError, match=r"--rlimit 'data=big': 'big' is not an amount"):
        parse_rlimit("data=big")


@pytest.mark.parametrize(
    ("resources", "expected"),
    [
        ({"memory": "268435456"}, 256 * MiB),  # what jobqd sends: bytes
        ({"memory": "1Gi"}, 1024 * MiB),
        ({"memory": "1500m"}, 2),  # milli-bytes, rounded up
        ({"memory": "0"}, None),
        ({"cpu": "2"}, None),
        ({"memory": "three"}, None),  # unreadable: no limit rather than a failed task
        ({}, None),
    ],
)
def test_memory_bytes(resources: dict[str, str], expected: int | None) -> None:
    assert memory_bytes(resources) == expected


def test_limits_for_merges_request_and_fixed_limits() -> None:
    fixed = LimitSettings(memory="data", fixed={"core": 0, "data": 100 * MiB})
    assert limits_for({}, fixed) == {"core": 0, "data": 100 * MiB}
    assert limits_for({"memory": str(10 * MiB)}, fixed) == {"core": 0, "data": 10 * MiB}
    assert limits_for({"memory": str(10**12)}, fixed)["data"] == 100 * MiB  # the node's ceiling holds
    assert limits_for({"memory": "64"}, LimitSettings(memory="as")) == {"as": 64}
    assert limits_for({"memory": "64"}, LimitSettings(memory="off")) == {}
    assert not LimitSettings(memory="off").may_limit
    assert LimitSettings(memory="off", fixed={"nofile": 8}).may_limit


def test_wrap_sets_soft_and_hard_and_keeps_the_arguments() -> None:
    argv = wrap("/usr/bin/prlimit", {"nofile": 64, "data": 1024}, "/usr/bin/env", ["env", "-i", "--", "x"])
    assert argv == [
        "/usr/bin/prlimit",
        "--data=1024:1024",
        "--nofile=64:64",
        "--",
        "/usr/bin/env",
        "-i",
        "--",
        "x",
    ]


def test_run_as_resolution() -> None:
    assert resolve_run_as(None) is None
    assert resolve_run_as("") is None
    assert resolve_run_as("root", euid=0) is None  # already that user: nothing to switch
    nobody = resolve_run_as("nobody", euid=0)
    assert nobody is not None and (nobody.name, nobody.uid) == ("nobody", 65534)
    assert nobody.gid in nobody.groups
    assert resolve_run_as("65534", euid=0) == nobody
    assert resolve_run_as("nobody", euid=65534) is None
    with pytest.raises(ValueError, match="switching users needs the node to run as root"):
        resolve_run_as("root", euid=1000)
    with pytest.raises(ValueError, match="no such user"):
        resolve_run_as("no-such-user-x", euid=0)
    with pytest.raises(ValueError, match="no such user"):
        resolve_run_as("99999999999999999999", euid=0)


def test_unreachable_parent() -> None:
    user = RunAs("u", 54321, 54321, (54321,), "/")
    with tempfile.TemporaryDirectory(prefix="jobq-reach-") as tmp:  # in /tmp: reachable by all
        base = Path(tmp) / "base"
        (base / "open").mkdir(parents=True)
        os.chmod(tmp, 0o711)
        os.chmod(base, 0o711)
        assert unreachable_parent(base / "open" / "work", user) is None
        assert unreachable_parent(base / "not-yet" / "work", user) is None  # the node creates it
        os.chmod(base, 0o700)
        assert unreachable_parent(base / "open" / "work", user) == base
        os.chmod(base, 0o710)
        in_group = RunAs("g", 54321, os.getegid(), (os.getegid(),), "/")
        assert unreachable_parent(base / "open" / "work", in_group) is None  # the group's x bit
