"""Generate the Python gRPC stubs and type stubs beside the .proto files in protos/.

`--check` generates into a scratch folder and fails if the checked-in files differ.
"""

import argparse
import filecmp
import sys
import tempfile
from importlib import resources
from pathlib import Path

from grpc_tools import protoc

PROTO_ROOT = Path(__file__).resolve().parent.parent / "protos"
GENERATED_SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")


def generate(out_dir: Path) -> None:
    protos = sorted(str(p.relative_to(PROTO_ROOT)) for p in PROTO_ROOT.rglob("*.proto"))
    well_known = str(resources.files("grpc_tools") / "_proto")
    args = [
        "protoc",
        f"-I{PROTO_ROOT}",
        f"-I{well_known}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        *protos,
    ]
    if protoc.main(args) != 0:
        sys.exit("protoc failed")


def generated_files(root: Path) -> set[Path]:
    return {p.relative_to(root) for p in root.rglob("*") if p.name.endswith(GENERATED_SUFFIXES)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if the stubs are stale")
    if not parser.parse_args().check:
        generate(PROTO_ROOT)
        return
    with tempfile.TemporaryDirectory() as scratch:
        fresh = Path(scratch)
        generate(fresh)
        expected, present = generated_files(fresh), generated_files(PROTO_ROOT)
        stale = sorted(
            str(p)
            for p in expected | present
            if p not in expected
            or p not in present
            or not filecmp.cmp(fresh / p, PROTO_ROOT / p, shallow=False)
        )
    if stale:
        sys.exit("generated gRPC code is stale, run `make protos`: " + ", ".join(stale))
    print("generated gRPC code is current")


if __name__ == "__main__":
    main()
