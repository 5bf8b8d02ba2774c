"""Which role may call which RPC, and which RPCs change state — one table (docs/security.md).

Every method of every jobq service has an explicit rule here; a test enumerates the generated
descriptors and fails when one is missing, so a new RPC cannot ship unguarded. Should one slip
through anyway, `rule_for` fails closed: admin only, treated as a write.

`writes` marks the RPCs refused with UNAVAILABLE while the store is read-only after a failed
write (jobqd.daemon): reads keep working, nothing changes memory that cannot reach the disk.
`submit` marks the RPCs that carry new jobs or tasks and count against the in-flight submit bound.
"""

from __future__ import annotations

from dataclasses import dataclass

from jobqd.auth.identity import Role

C, N, A = Role.CLIENT, Role.NODE, Role.ADMIN


@dataclass(frozen=True, slots=True)
class Rule:
    roles: frozenset[Role]
    writes: bool
    submit: bool = False


def _r(*roles: Role, writes: bool, submit: bool = False) -> Rule:
    return Rule(frozenset(roles), writes, submit)


#: Services anyone may call, without a token: health checks and reflection (no data in either).
OPEN_SERVICES: tuple[str, ...] = (
    "grpc.health.v1.Health",
    "grpc.reflection.v1alpha.ServerReflection",
    "grpc.reflection.v1.ServerReflection",
)

_READ = _r(C, A, writes=False)
_OWN_WRITE = _r(C, A, writes=True)
_SUBMIT = _r(C, A, writes=True, submit=True)
_ADMIN_WRITE = _r(A, writes=True)

#: service full name → method name → rule. Clients act on their own jobs only; that scoping is
#: done by the servicers (jobqd.auth.identity), the role check here.
RULES: dict[str, dict[str, Rule]] = {
    "jobq.v1.JobService": {
        "SubmitJob": _SUBMIT,
        "SubmitJobs": _SUBMIT,
        "CreateJob": _SUBMIT,
        "AddTasks": _SUBMIT,
        "CommitJob": _OWN_WRITE,
        "GetJob": _READ,
        "ListJobs": _READ,
        "CancelJobs": _OWN_WRITE,
        "RequeueJobs": _OWN_WRITE,
        "PauseJobs": _OWN_WRITE,
        "ResumeJobs": _OWN_WRITE,
        "SetJobPriority": _OWN_WRITE,
        "DeleteJob": _OWN_WRITE,
        "GetTask": _READ,
        "ListTasks": _READ,
        "RequeueTasks": _OWN_WRITE,
        "CancelTasks": _OWN_WRITE,
        "TailTaskLog": _READ,
        "WatchEvents": _READ,
    },
    "jobq.v1.QueueService": {
        # anyone may see the queues (to pick one, or see why a job waits); only admins change them
        "ListQueues": _READ,
        "GetQueue": _READ,
        "CreateQueue": _ADMIN_WRITE,
        "UpdateQueue": _ADMIN_WRITE,
        "DeleteQueue": _ADMIN_WRITE,
        "HoldQueue": _ADMIN_WRITE,
        "ReleaseQueue": _ADMIN_WRITE,
    },
    "jobq.v1.NodeAdminService": {
        # the farm's capacity is no secret; draining nodes and clearing the blocklist is
        "ListNodes": _READ,
        "GetNode": _READ,
        "DrainNode": _ADMIN_WRITE,
        "ResumeNode": _ADMIN_WRITE,
        "ClearBlocklist": _ADMIN_WRITE,
    },
    "jobq.v1.NodeService": {
        # node tokens only — not even admin: a task can read its node's token (docs/security.md),
        # so the node role must be worth as little as possible, and an admin token on a node
        # would hand every task admin rights
        "Connect": _r(N, writes=True),
    },
}

_FAIL_CLOSED = _r(A, writes=True)

_BY_PATH: dict[str, Rule] = {
    f"/{service}/{method}": rule for service, methods in RULES.items() for method, rule in methods.items()
}
_OPEN_PREFIXES = tuple(f"/{s}/" for s in OPEN_SERVICES)


def is_open(method: str) -> bool:
    """`method` is a gRPC path, `/package.Service/Method`."""
    return method.startswith(_OPEN_PREFIXES)


def rule_for(method: str) -> Rule:
    return _BY_PATH.get(method, _FAIL_CLOSED)
