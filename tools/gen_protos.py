"""Regenerate the committed protobuf/gRPC stubs in client/jobq/v1 from proto/.

Why a script: the generated code is committed (clients install without grpcio-tools) and CI
checks it for drift (`tools/gen_protos.py --check`), so there must be exactly one way to make it.
Run with the grpcio-tools pinned in pyproject's dev extra: newer gencode refuses older runtimes.
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = ROOT / "proto"
OUT_DIR = ROOT / "client"
PACKAGE = Path("jobq") / "v1"


def generate(out: Path) -> None:
    import grpc_tools

    protos = sorted(str(p.relative_to(PROTO_DIR)) for p in (PROTO_DIR / PACKAGE).glob("*.proto"))
    include = Path(grpc_tools.__file__).parent / "_proto"
    bindir = Path(sys.executable).parent
    cmd = [
        sys.executable,
        "-m",
        "grpc_tools.protoc",
        f"-I{PROTO_DIR}",
        f"-I{include}",
        f"--python_out={out}",
        f"--grpc_python_out={out}",
        f"--mypy_out={out}",
        f"--mypy_grpc_out={out}",
        f"--plugin=protoc-gen-mypy={bindir / 'protoc-gen-mypy'}",
        f"--plugin=protoc-gen-mypy_grpc={bindir / 'protoc-gen-mypy_grpc'}",
        *protos,
    ]
    subprocess.run(cmd, check=True, cwd=PROTO_DIR)
    (out / PACKAGE / "__init__.py").write_text(
        '"""Generated protobuf/gRPC code for jobq.v1 (do not edit)."""\n'
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if the committed stubs differ")
    args = parser.parse_args()
    if not args.check:
        target = OUT_DIR / PACKAGE
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        generate(OUT_DIR)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / PACKAGE).mkdir(parents=True)
        generate(Path(tmp))
        fresh = Path(tmp) / PACKAGE
        committed = OUT_DIR / PACKAGE
        names = {p.name for p in fresh.iterdir()} | (
            {p.name for p in committed.iterdir() if p.name != "__pycache__"} if committed.exists() else set()
        )
        _, mismatch, errors = filecmp.cmpfiles(fresh, committed, sorted(names), shallow=False)
        if mismatch or errors:
            print(f"generated stubs drifted from proto/: {sorted(mismatch + errors)}; run `make proto`")
            return 1
    print("generated stubs match proto/")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
