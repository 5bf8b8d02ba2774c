"""--allow-command: glob matching on resolved absolute paths, and the refusal messages."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from jobq.node.allowlist import Allowlist, CommandRefused, glob_match, resolve_executable


@pytest.mark.parametrize(
    ("pattern", "path", "matches"),
    [
        ("/bin/echo", "/bin/echo", True),
        ("/bin/echo", "/bin/echoo", False),
        ("/bin/*", "/bin/echo", True),
        ("/usr/bin/*", "/usr/bin/python3.11", True),
        # * never crosses a directory boundary
        ("/opt/*", "/opt/tools/bin/run", False),
        ("/opt/**", "/opt/tools/bin/run", True),
        ("/opt/**/run", "/opt/run", True),
        ("/opt/**/run", "/opt/a/b/run", True),
        ("/opt/**/run", "/opt/a/b/walk", False),
        ("/usr/bin/py?hon3", "/usr/bin/python3", True),
        ("/usr/bin/[ab]*", "/usr/bin/awk", True),
        ("/usr/bin/[ab]*", "/usr/bin/cat", False),
        ("/bin/echo", "/BIN/echo", False),
        ("/bin/*", "/bin", False),
    ],
)
def test_glob_match(pattern: str, path: str, matches: bool) -> None:
    assert glob_match(pattern, path) is matches


def make_program(directory: Path, name: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    program = directory / name
    program.write_text("#!/bin/sh\n")
    program.chmod(0o755)
    return program


def test_bare_names_are_looked_up_on_the_childs_path(tmp_path: Path) -> None:
    first = make_program(tmp_path / "first", "tool")
    make_program(tmp_path / "second", "tool")
    search = f"{tmp_path / 'missing'}{os.pathsep}{tmp_path / 'first'}{os.pathsep}{tmp_path / 'second'}"
    assert resolve_executable("tool", search_path=search, cwd="/") == str(first)


def test_paths_are_normalised_and_relative_ones_resolved_against_cwd(tmp_path: Path) -> None:
    program = make_program(tmp_path / "bin", "tool")
    assert resolve_executable("./bin/../bin/tool", search_path="", cwd=str(tmp_path)) == str(program)
    assert resolve_executable(str(tmp_path / "bin" / ".." / "bin" / "tool"), search_path="", cwd="/") == str(
        program
    )


def test_not_executable_or_missing_is_none(tmp_path: Path) -> None:
    plain = tmp_path / "data"
    plain.write_text("x")
    assert resolve_executable(str(plain), search_path="", cwd="/") is None
    assert resolve_executable("no-such-program-here", search_path=str(tmp_path), cwd="/") is None


def test_refusal_message_names_the_resolved_path_and_the_allowlist(tmp_path: Path) -> None:
    make_program(tmp_path / "bin", "rm")
    allow = Allowlist.of(["/bin/echo", "/usr/bin/echo"])
    with pytest.raises(CommandRefused) as caught:
        allow.check("rm", search_path=str(tmp_path / "bin"), cwd="/")
    assert (
        caught.value.message == f"command not allowed: {tmp_path}/bin/rm (allowed: /bin/echo, /usr/bin/echo)"
    )
    assert caught.value.exit_code is None


def test_allowed_program_resolves_to_the_path_that_will_run(tmp_path: Path) -> None:
    program = make_program(tmp_path / "bin", "tool")
    allow = Allowlist.of([f"{tmp_path}/bin/*"])
    assert allow.check("tool", search_path=str(tmp_path / "bin"), cwd="/") == str(program)


def test_missing_program_is_command_not_found_with_127() -> None:
    with pytest.raises(CommandRefused) as caught:
        Allowlist.of(["/bin/*"]).check("no-such-program-here", search_path="/nonexistent", cwd="/")
    assert caught.value.message == "command not found: no-such-program-here"
    assert caught.value.exit_code == 127


def test_empty_allowlist_allows_everything() -> None:
    allow = Allowlist.of([])
    assert not allow.restricts
    assert allow.allows("/any/thing")


def test_relative_globs_are_rejected() -> None:
    with pytest.raises(ValueError, match="must be an absolute path glob"):
        Allowlist.of(["bin/*"])
