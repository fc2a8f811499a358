"""Generate the Python gRPC stubs in ``ltr/serve/_proto`` from ``proto/`` (``make proto``).

``protoc`` names Python modules after the ``.proto`` path (``ltr/reranker/v1/reranker.proto`` ->
``ltr.reranker.v1.reranker_pb2``); the stubs live under ``ltr.serve._proto``, so the one import
the gRPC module makes of its message module is rewritten to that prefix. Everything else is
protoc's own output. ``tests/serve/test_serve_proto.py`` regenerates the stubs into a temporary
folder and requires them to match the checked-in files byte for byte.

Run: ``python -m ltr.serve.protogen`` (writes ``ltr/serve/_proto``).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PROTO_ROOT = REPO / "proto"
STUBS_ROOT = Path(__file__).resolve().parent / "_proto"
PACKAGE = "ltr.serve._proto"


def proto_files(proto_root: Path = PROTO_ROOT) -> list[Path]:
    """Every ``.proto`` file under ``proto_root``, relative to it, sorted."""
    return sorted(p.relative_to(proto_root) for p in proto_root.rglob("*.proto"))


def generate(out_dir: Path, proto_root: Path = PROTO_ROOT) -> list[Path]:
    """Run ``grpc_tools.protoc`` on every proto into ``out_dir``; return the files written.

    Writes ``*_pb2.py``, ``*_pb2.pyi``, ``*_pb2_grpc.py`` and an empty ``__init__.py`` in every
    package folder, so the stubs import as ``ltr.serve._proto.<proto package>``.
    """
    import grpc_tools
    from grpc_tools import protoc

    out_dir.mkdir(parents=True, exist_ok=True)
    protos = proto_files(proto_root)
    if not protos:
        raise FileNotFoundError(f"no .proto files under {proto_root}")
    include = Path(grpc_tools.__file__).parent / "_proto"
    args = [
        "grpc_tools.protoc",
        f"-I{proto_root}",
        f"-I{include}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        *[str(p) for p in protos],
    ]
    if protoc.main(args) != 0:
        raise RuntimeError(f"protoc failed on {', '.join(map(str, protos))}")
    written: list[Path] = []
    for proto in protos:
        stem = proto.with_suffix("")
        module = ".".join(stem.parent.parts)
        grpc_file = out_dir / f"{stem}_pb2_grpc.py"
        text = grpc_file.read_text()
        text = re.sub(
            rf"^from {re.escape(module)} import ",
            f"from {PACKAGE}.{module} import ",
            text,
            flags=re.M,
        )
        grpc_file.write_text(text)
        written += [out_dir / f"{stem}_pb2.py", out_dir / f"{stem}_pb2.pyi", grpc_file]
        parts = stem.parent.parts
        for depth in range(len(parts) + 1):  # _proto/, _proto/ltr/, ... the proto's folder
            init = out_dir.joinpath(*parts[:depth], "__init__.py")
            init.write_text("")
            written.append(init)
    return sorted(set(written))


def main() -> int:
    for path in generate(STUBS_ROOT):
        print(path.relative_to(REPO))
    return 0


if __name__ == "__main__":
    sys.exit(main())
