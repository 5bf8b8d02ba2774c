"""Human names for the API's enums: the one place ``JOB_STATUS_SOFT_FAILED`` becomes ``soft-failed``.

The seed documents name states in lower-case with dashes (``queued``, ``cancel-requested``,
admission ``submitted``/``pending``/``admitted``/``inadmissible``/``finished``). Rather than a
hand-kept table per enum, which drifts when the proto grows a value, every name is derived from the
enum's descriptor: drop the enum's prefix, lower-case, ``_`` → ``-``. Parsing accepts that name,
the underscore spelling and the full proto name, case-insensitively.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Generic, TypeVar

from jobq.errors import InvalidArgument
from jobq.v1 import types_pb2

if TYPE_CHECKING:  # the generic wrapper type exists only in the type stubs
    from google.protobuf.internal.enum_type_wrapper import _EnumTypeWrapper

__all__ = [
    "ADMISSION_PHASE",
    "DEPENDENCY_CONDITION",
    "EVENT_TYPE",
    "JOB_STATUS",
    "NODE_STATE",
    "PREEMPTION_POLICY",
    "QUEUEING_STRATEGY",
    "QUEUE_STATE",
    "TASK_STATUS",
    "EnumNames",
]

V = TypeVar("V", bound=int)


class EnumNames(Generic[V]):
    """Two-way mapping between one proto enum's values and their human names."""

    def __init__(self, enum: _EnumTypeWrapper[V], what: str) -> None:
        #: What a value of this enum is called in messages ("job status").
        self.what = what
        names = [value.name for value in enum.DESCRIPTOR.values]
        # The prefix every value shares, derived from the UNSPECIFIED value ("JOB_STATUS_").
        self._prefix = names[0].removesuffix("UNSPECIFIED")
        self._unspecified = enum.Value(names[0])
        self._by_value: dict[int, str] = {}
        self._by_name: dict[str, V] = {}
        for proto_name, value in enum.items():
            human = proto_name.removeprefix(self._prefix).lower().replace("_", "-")
            self._by_value[value] = human
            for spelling in (human, human.replace("-", "_"), proto_name.lower()):
                self._by_name[spelling] = value

    def name(self, value: int) -> str:
        """``JOB_STATUS_SOFT_FAILED`` → ``"soft-failed"``; a value this client does not know → ``"<12>"``."""
        return self._by_value.get(value, f"<{value}>")

    def value(self, name: str) -> V:
        """``"soft-failed"``, ``"soft_failed"`` or ``"TASK_STATUS_SOFT_FAILED"`` → the enum value.

        Raises :class:`~jobq.errors.InvalidArgument` listing the valid names.
        """
        found = self._by_name.get(name.strip().lower())
        if found is None or found == self._unspecified:
            raise InvalidArgument(f"unknown {self.what} {name!r} (expected one of {', '.join(self.names())})")
        return found

    def names(self) -> list[str]:
        """The human names, in proto order, without the UNSPECIFIED value."""
        return [name for value, name in self._by_value.items() if value != self._unspecified]

    def coerce(self, item: int | str) -> V:
        """An enum value given either as its number or as any accepted name."""
        if isinstance(item, str):
            return self.value(item)
        if item not in self._by_value:
            raise InvalidArgument(f"unknown {self.what} value {item}")
        return self._by_name[self._by_value[item]]


JOB_STATUS = EnumNames(types_pb2.JobStatus, "job status")
TASK_STATUS = EnumNames(types_pb2.TaskStatus, "task status")
ADMISSION_PHASE = EnumNames(types_pb2.AdmissionPhase, "admission phase")
DEPENDENCY_CONDITION = EnumNames(types_pb2.DependencyCondition, "dependency condition")
QUEUEING_STRATEGY = EnumNames(types_pb2.QueueingStrategy, "queueing strategy")
PREEMPTION_POLICY = EnumNames(types_pb2.PreemptionPolicy, "preemption policy")
QUEUE_STATE = EnumNames(types_pb2.QueueState, "queue state")
NODE_STATE = EnumNames(types_pb2.NodeState, "node state")
EVENT_TYPE = EnumNames(types_pb2.EventType, "event type")
