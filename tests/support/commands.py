"""Commands and tasks that tests submit: one definition for every tier."""

from __future__ import annotations

from pathlib import Path

from google.protobuf import struct_pb2
from jobq.v1 import types_pb2 as pb


def cmd(type_: str, **params: object) -> pb.Command:
    s = struct_pb2.Struct()
    s.update(params)
    return pb.Command(type=type_, params=s)


def sh(script: str) -> pb.Command:
    return cmd("exec", argv=["/bin/sh", "-c", script])


def gated(gate: Path) -> pb.TaskSpec:
    """A task that runs until `gate` exists."""
    return pb.TaskSpec(commands=[sh(f"while [ ! -e {gate} ]; do sleep 0.05; done")])
