"""Which user the commands of a task run as.

A node started as root runs commands as root unless it is given ``--run-as USER``: then every
process of every task switches to that user's uid, primary gid and supplementary groups before it
executes (done by ``subprocess`` in C between fork and exec, so it is safe with threads), and the
attempt's working directory is handed to that user. A node that is not root cannot switch users;
asking it to is refused at start rather than failing every task later.
"""

from __future__ import annotations

import os
import pwd
import stat
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class RunAs:
    """A resolved user to run commands as."""

    name: str
    uid: int
    gid: int
    groups: tuple[int, ...]
    home: str


def resolve_run_as(user: str | None, *, euid: int | None = None) -> RunAs | None:
    """``--run-as`` (a name or a numeric uid) resolved; None when no switch is needed (not given,
    or the node already runs as that user). Raises ValueError with the reason."""
    if not user:
        return None
    euid = os.geteuid() if euid is None else euid
    try:
        entry = pwd.getpwuid(int(user)) if user.isdigit() else pwd.getpwnam(user)
    except (KeyError, OverflowError):
        raise ValueError(f"--run-as {user!r}: no such user on this machine") from None
    if entry.pw_uid == euid:
        return None
    if euid != 0:
        raise ValueError(
            f"--run-as {user!r}: switching users needs the node to run as root (it runs as uid {euid})"
        )
    try:
        groups = tuple(os.getgrouplist(entry.pw_name, entry.pw_gid))
    except OSError:  # pragma: no cover - only with a broken NSS setup
        groups = (entry.pw_gid,)
    return RunAs(entry.pw_name, entry.pw_uid, entry.pw_gid, groups, entry.pw_dir)


def describe_user(uid: int) -> str:
    """``"nobody (65534)"``, for log lines."""
    try:
        return f"{pwd.getpwuid(uid).pw_name} ({uid})"
    except KeyError:
        return str(uid)


def unreachable_parent(path: Path, user: RunAs) -> Path | None:
    """The first directory on the way to ``path`` that ``user`` may not enter (no search
    permission), or None when the user can reach it. A node running as root creates the work
    directory, but the commands that run in it as ``user`` must be able to get there."""
    for directory in reversed(path.parents):  # `path` itself: the node sets its mode
        try:
            st = directory.stat()
        except FileNotFoundError:
            return None  # created by the node, with a mode that lets the user through
        if st.st_uid == user.uid:
            bit = stat.S_IXUSR
        elif st.st_gid in user.groups:
            bit = stat.S_IXGRP
        else:
            bit = stat.S_IXOTH
        if not st.st_mode & bit:
            return directory
    return None
