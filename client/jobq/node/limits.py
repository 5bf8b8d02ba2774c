"""Per-process resource limits (``RLIMIT_*``) for the commands of an attempt.

Two sources, merged per attempt:

* the task's **memory request** (the ``memory`` resource jobqd reserved for the attempt on this
  node) becomes a limit on every process of the attempt — ``RLIMIT_DATA`` by default (heap and
  private writable mappings: what a runaway allocation grows), or ``RLIMIT_AS`` (all address
  space; stricter, but programs that reserve large virtual ranges, such as the JVM or Go, fail
  under it), or none;
* the node's **fixed limits** (``--rlimit core=0 --rlimit nofile=4096 …``), the same for every
  task.

The limits are applied by exec'ing through util-linux ``prlimit`` (``prlimit --data=N:N -- argv``):
Python cannot set rlimits between fork and exec without ``preexec_fn``, which is unsafe in a
process with threads (gRPC's), and setting them after the start leaves a window in which the
command may already have forked. Soft and hard limits are the same, so a task cannot raise them.
They bound each process, not the task as a whole: a task that starts many processes can use more in
total (a cgroup would be needed for that; the node does not manage cgroups).

``cpu`` requests are not turned into limits: ``RLIMIT_CPU`` counts CPU seconds, not cores, and the
run-time bound is the command's ``timeout_s``. Pure apart from :func:`find_prlimit`.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Literal

MemoryLimit = Literal["data", "as", "off"]
MEMORY_LIMITS: tuple[MemoryLimit, ...] = ("data", "as", "off")

RLIMITS: Mapping[str, str] = {
    "as": "address space, bytes",
    "core": "core file size, bytes",
    "cpu": "CPU time, seconds",
    "data": "data segment, bytes",
    "fsize": "size of a written file, bytes",
    "memlock": "locked memory, bytes",
    "nofile": "open files",
    "nproc": "processes of the user",
    "stack": "stack size, bytes",
}
"""The limits ``--rlimit`` accepts (prlimit's option names), with what they bound."""

_SUFFIX = {
    "": 1,
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
}
_AMOUNT = re.compile(r"([0-9]+(?:\.[0-9]+)?)(k|M|G|T|Ki|Mi|Gi|Ti)?")
_MILLI = re.compile(r"([0-9]+)m")


@dataclass(frozen=True)
class LimitSettings:
    """What the node limits (see the module doc)."""

    memory: MemoryLimit = "data"
    """Which limit a task's memory request becomes."""
    fixed: Mapping[str, int] = field(default_factory=dict)
    """``--rlimit`` values by name (keys of :data:`RLIMITS`)."""

    @property
    def may_limit(self) -> bool:
        """Whether any attempt can get a limit (and so prlimit is needed)."""
        return self.memory != "off" or bool(self.fixed)


def parse_amount(text: str) -> int:
    """``"4096"``, ``"512Mi"``, ``"1.5G"`` → an integer (bytes or a count). Raises ValueError."""
    m = _AMOUNT.fullmatch(text.strip())
    if not m:
        raise ValueError(f"{text!r} is not an amount (examples: 0, 4096, 512Mi, 2G)")
    try:
        value = Decimal(m.group(1)) * _SUFFIX[m.group(2) or ""]
    except InvalidOperation as err:  # pragma: no cover - the regex admits only valid decimals
        raise ValueError(f"{text!r} is not an amount") from err
    return int(value.to_integral_value(rounding="ROUND_CEILING"))


def parse_rlimit(text: str) -> tuple[str, int]:
    """``"nofile=4096"`` → ``("nofile", 4096)``. Raises ValueError naming the known limits."""
    name, sep, value = text.partition("=")
    name = name.strip().lower()
    if not sep or name not in RLIMITS:
        known = ", ".join(sorted(RLIMITS))
        raise ValueError(f"--rlimit {text!r}: expected NAME=VALUE with NAME one of {known}")
    try:
        return name, parse_amount(value)
    except ValueError as err:
        raise ValueError(f"--rlimit {text!r}: {err}") from None


def memory_bytes(resources: Mapping[str, str]) -> int | None:
    """The ``memory`` an attempt reserved, in bytes; None when it has none (or it is unreadable:
    jobqd validated it, so that would be a newer format, and the node then simply sets no limit)."""
    text = resources.get("memory", "").strip()
    if not text:
        return None
    if m := _MILLI.fullmatch(text):  # jobqd sends milli-units for fractions of a byte
        return -(-int(m.group(1)) // 1000) or None
    try:
        return parse_amount(text) or None
    except ValueError:
        return None


def limits_for(resources: Mapping[str, str], settings: LimitSettings) -> dict[str, int]:
    """The limits of one attempt: the fixed ones, plus its memory request as configured."""
    limits = dict(settings.fixed)
    memory = memory_bytes(resources) if settings.memory != "off" else None
    if memory is not None:
        # an explicit --rlimit data/as on the node is a ceiling the request cannot lift
        limits[settings.memory] = min(memory, limits.get(settings.memory, memory))
    return limits


def wrap(prlimit: str, limits: Mapping[str, int], executable: str, argv: Sequence[str]) -> list[str]:
    """The argv that runs ``executable`` (with ``argv[1:]``) under ``limits`` through prlimit."""
    options = [f"--{name}={value}:{value}" for name, value in sorted(limits.items())]
    return [prlimit, *options, "--", executable, *argv[1:]]


def find_prlimit() -> str | None:
    """util-linux ``prlimit`` on the node's PATH."""
    return shutil.which("prlimit")
