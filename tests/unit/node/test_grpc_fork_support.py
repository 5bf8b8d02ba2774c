"""The node turns gRPC's fork handlers off before gRPC is loaded (see jobq/node/__init__.py): with
them on, a --run-as child (forked, not vforked) could abort or crash before its exec."""

from __future__ import annotations

import subprocess
import sys

PROBE = """
import os, sys
import jobq.node.main
print(os.environ.get("GRPC_ENABLE_FORK_SUPPORT"))
"""

ORDER = """
import sys
import jobq, jobq.node
print("grpc" in sys.modules)
"""


def _run(code: str, env: dict[str, str] | None = None) -> str:
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, env=env)
    return out.stdout.strip()


def test_importing_the_node_turns_fork_support_off() -> None:
    assert _run(PROBE, env={"PATH": "/usr/bin:/bin"}) == "false"


def test_an_explicit_setting_is_kept() -> None:
    assert _run(PROBE, env={"PATH": "/usr/bin:/bin", "GRPC_ENABLE_FORK_SUPPORT": "true"}) == "true"


def test_grpc_is_not_loaded_before_the_node_package_runs() -> None:
    assert _run(ORDER) == "False"


def test_the_sdk_names_still_import_from_the_package() -> None:
    code = "from jobq import AsyncClient, Client, job_filter, task_id; print(Client.__name__)"
    assert _run(code) == "Client"
    bad = subprocess.run(
        [sys.executable, "-c", "import jobq; jobq.nope"], check=False, capture_output=True, text=True
    )
    assert "module 'jobq' has no attribute 'nope'" in bad.stderr
