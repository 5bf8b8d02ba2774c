"""Which programs ``exec`` may start on this node (``--allow-command GLOB``).

The check is made on the absolute path that will really be executed: ``argv[0]`` is looked up on the
command's own ``PATH`` (as the child would) or taken as a path, normalised, and then executed by that
exact path, so a different ``PATH`` cannot swap the binary between the check and the exec. Symlinks
are not resolved: allow directories only administrators can write to.

Globs match whole paths segment by segment: ``*``, ``?`` and ``[...]`` never cross a ``/``, and a
segment ``**`` matches any number of directories (``/opt/tools/**`` allows everything below).
"""

from __future__ import annotations

import fnmatch
import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass


class CommandRefused(Exception):
    """The command may not or cannot run here; the message is the task's failure message."""

    def __init__(self, message: str, *, exit_code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


def glob_match(pattern: str, path: str) -> bool:
    """Whether absolute ``path`` matches ``pattern`` (segment-wise glob with ``**``)."""
    return _match_segments(_segments(pattern), _segments(path))


def _segments(path: str) -> list[str]:
    return [part for part in path.split("/") if part]


def _match_segments(pattern: list[str], path: list[str]) -> bool:
    if not pattern:
        return not path
    head = pattern[0]
    if head == "**":
        # ** swallows zero or more directories
        return any(_match_segments(pattern[1:], path[skip:]) for skip in range(len(path) + 1))
    if not path:
        return False
    return fnmatch.fnmatchcase(path[0], head) and _match_segments(pattern[1:], path[1:])


def resolve_executable(argv0: str, *, search_path: str | None, cwd: str) -> str | None:
    """The absolute, normalised path ``argv0`` would execute, or None if there is no such program.

    Names with a slash are paths (relative ones to ``cwd``); bare names are searched on
    ``search_path`` (the child's PATH).
    """
    if "/" in argv0:
        candidate = os.path.normpath(os.path.join(cwd, argv0))
        return candidate if os.path.isfile(candidate) and os.access(candidate, os.X_OK) else None
    found = shutil.which(argv0, path=search_path or os.defpath)
    if found is None:
        return None
    return os.path.normpath(os.path.join(cwd, found))


@dataclass(frozen=True)
class Allowlist:
    """The node's ``--allow-command`` globs. Empty means every program is allowed."""

    patterns: tuple[str, ...] = ()

    @classmethod
    def of(cls, patterns: Iterable[str]) -> Allowlist:
        """Build from globs; they must be absolute (a relative glob would depend on the cwd)."""
        cleaned = tuple(p.strip() for p in patterns if p.strip())
        for pattern in cleaned:
            if not pattern.startswith("/"):
                raise ValueError(f"--allow-command {pattern!r}: must be an absolute path glob")
        return cls(cleaned)

    @property
    def restricts(self) -> bool:
        """Whether a list was given at all."""
        return bool(self.patterns)

    def allows(self, path: str) -> bool:
        """Whether the absolute path ``path`` may be executed."""
        if not self.patterns:
            return True
        return any(glob_match(pattern, path) for pattern in self.patterns)

    def check(self, argv0: str, *, search_path: str | None, cwd: str) -> str:
        """The path to execute for ``argv0``; :class:`CommandRefused` if missing or not allowed."""
        resolved = resolve_executable(argv0, search_path=search_path, cwd=cwd)
        if resolved is None:
            raise CommandRefused(f"command not found: {argv0}", exit_code=127)
        if not self.allows(resolved):
            raise CommandRefused(f"command not allowed: {resolved} (allowed: {', '.join(self.patterns)})")
        return resolved
