"""The authenticated caller of the RPC being served, and what that caller may see.

The guard (`jobqd.auth.guard`) binds the caller to a context variable for the duration of each call;
servicers ask here instead of parsing metadata themselves. With authentication off (no tokens, on
loopback) there is no identity and every caller is treated like an admin: whoever can reach a
loopback socket already runs code on this machine.
"""

from __future__ import annotations

import contextvars
from dataclasses import dataclass
from enum import StrEnum

from jobqd.domain.errors import PermissionDenied


class Role(StrEnum):
    #: submits jobs and sees / acts on its own jobs only
    CLIENT = "client"
    #: a jobq-node: only NodeService.Connect, and only under the node name the token was made for
    NODE = "node"
    #: everything, including queues, nodes, the blocklist and every user's jobs
    ADMIN = "admin"


@dataclass(frozen=True, slots=True)
class Identity:
    #: the token's name; recorded as the owner of the jobs submitted with it
    name: str
    role: Role


_CURRENT: contextvars.ContextVar[Identity | None] = contextvars.ContextVar("jobq_identity", default=None)


def current() -> Identity | None:
    """The caller of the current RPC; None when authentication is off."""
    return _CURRENT.get()


def bind(identity: Identity | None) -> contextvars.Token[Identity | None]:
    return _CURRENT.set(identity)


def unbind(token: contextvars.Token[Identity | None]) -> None:
    _CURRENT.reset(token)


def sees_all() -> bool:
    """Whether the caller sees and acts on every user's jobs (admin, or authentication off)."""
    ident = _CURRENT.get()
    return ident is None or ident.role is Role.ADMIN


def sees(owner: str) -> bool:
    """Whether the caller may see and act on a job owned by `owner`."""
    ident = _CURRENT.get()
    return ident is None or ident.role is Role.ADMIN or ident.name == owner


def owner_of_new_job() -> str:
    """The owner recorded for a job the caller submits: its token's name ('' without auth)."""
    ident = _CURRENT.get()
    return ident.name if ident is not None else ""


def scope_owner(requested: str) -> str:
    """The owner a job listing is restricted to: a client's own name, whatever it asked for.

    A client that explicitly asks for someone else's jobs is told so rather than shown an empty
    list that looks like "that user has no jobs".
    """
    ident = _CURRENT.get()
    if ident is None or ident.role is Role.ADMIN:
        return requested
    if requested and requested != ident.name:
        raise PermissionDenied(f"a client token sees only its own jobs (owner {ident.name!r})")
    return ident.name


def may_connect_as_node(name: str) -> bool:
    """A node token connects only as the node it was created for (the token's name)."""
    ident = _CURRENT.get()
    return ident is None or (ident.role is Role.NODE and ident.name == name)
