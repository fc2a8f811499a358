"""SetRank traces with torch.export for any batch size and list length (the route to ONNX).

Data-dependent Python control flow on tensor values (``if mask.all(): ...``) would make the export
fail or bake one branch in; the exported program must match eager on unseen shapes, padded slots and
fully padded lists included.
"""

from __future__ import annotations

import pytest
import torch
from torch.export import Dim, export

from ltr.models import RankingModel, SetRank, SetRankConfig


@pytest.mark.parametrize("block", ["msab", "imsab"])
def test_exported_program_matches_eager_on_new_shapes(block: str) -> None:
    torch.manual_seed(0)
    config = SetRankConfig(
        num_features=5, block=block, num_blocks=1, use_initial_rank=True, context_dim=3
    )
    model = RankingModel(SetRank(config)).eval()
    example = (
        torch.randn(2, 7, 5),
        torch.ones(2, 7, dtype=torch.bool),
        torch.arange(1, 8).expand(2, 7).contiguous(),
        torch.randn(2, 3),
    )
    b, n = Dim("batch", min=1, max=1024), Dim("list", min=2, max=8192)
    program = export(
        model, example, dynamic_shapes=({0: b, 1: n}, {0: b, 1: n}, {0: b, 1: n}, {0: b})
    )

    x, mask = torch.randn(3, 11, 5), torch.rand(3, 11) > 0.3
    mask[1] = False  # a fully padded list
    rank, ctx = torch.randint(0, 300, (3, 11)), torch.randn(3, 3)
    with torch.no_grad():
        expected = model(x, mask, rank, ctx)
        got = program.module()(x, mask, rank, ctx)
    torch.testing.assert_close(got, expected)
    assert torch.isfinite(got).all()
