"""The checked-in stubs are exactly what protoc makes of proto/ (they can never drift)."""

from __future__ import annotations

from ltr.serve import protogen
from ltr.serve._proto.ltr.reranker.v1 import reranker_pb2 as pb


def test_checked_in_stubs_match_a_fresh_generation(tmp_path) -> None:
    fresh = protogen.generate(tmp_path)
    relative = sorted(p.relative_to(tmp_path) for p in fresh)
    checked_in = sorted(
        p.relative_to(protogen.STUBS_ROOT)
        for p in protogen.STUBS_ROOT.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    )
    assert relative == checked_in, "run `make proto` to regenerate ltr/serve/_proto"
    for rel in relative:
        assert (tmp_path / rel).read_bytes() == (protogen.STUBS_ROOT / rel).read_bytes(), (
            f"{rel} differs from proto/; run `make proto`"
        )


def test_the_loaded_descriptor_is_the_proto_file() -> None:
    assert pb.DESCRIPTOR.name == "ltr/reranker/v1/reranker.proto"
    assert pb.DESCRIPTOR.package == "ltr.reranker.v1"
    service = pb.DESCRIPTOR.services_by_name["Reranker"]
    assert [m.name for m in service.methods] == [
        "Rerank",
        "RerankBatch",
        "GetModelInfo",
        "RerankText",
        "RecordClicks",
    ]
    # fixed values are enumerations, not strings
    assert pb.ModelInfo.DESCRIPTOR.fields_by_name["backend"].enum_type.name == "Backend"
