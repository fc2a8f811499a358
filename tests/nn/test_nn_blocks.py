"""MAB / MSAB / IMSAB against torch's own Transformer layers and explicit formulas."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ltr.errors import RegistryError
from ltr.nn.attention import MultiHeadAttention
from ltr.nn.blocks import IMSAB, MAB, MSAB, FeedForward

D, HEADS, D_FF = 12, 3, 20


def copy_attention(src: MultiHeadAttention, dst: nn.MultiheadAttention) -> None:
    with torch.no_grad():
        dst.in_proj_weight.copy_(
            torch.cat([src.q_proj.weight, src.k_proj.weight, src.v_proj.weight])
        )
        dst.in_proj_bias.copy_(torch.cat([src.q_proj.bias, src.k_proj.bias, src.v_proj.bias]))
        dst.out_proj.weight.copy_(src.out_proj.weight)
        dst.out_proj.bias.copy_(src.out_proj.bias)


def torch_encoder_layer(block: MSAB, norm_first: bool) -> nn.TransformerEncoderLayer:
    """nn.TransformerEncoderLayer with ``block``'s weights (its pre/post-LN maths is MSAB's)."""
    layer = nn.TransformerEncoderLayer(
        D, HEADS, D_FF, dropout=0.0, activation="gelu", batch_first=True, norm_first=norm_first
    ).double()
    mab = block.mab
    copy_attention(mab.attn, layer.self_attn)
    layer.linear1.load_state_dict(mab.ffn.fc.state_dict())
    layer.linear2.load_state_dict(mab.ffn.proj.state_dict())
    layer.norm1.load_state_dict(mab.norm_attn.state_dict())
    layer.norm2.load_state_dict(mab.norm_ffn.state_dict())
    return layer.eval()


def randomise_norms(module: nn.Module) -> None:
    """Give every LayerNorm a non-trivial affine map so that a swapped norm would show."""
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.LayerNorm):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)


@pytest.mark.parametrize("norm_first", [True, False])
def test_msab_matches_torch_encoder_layer_with_padding(norm_first: bool) -> None:
    torch.manual_seed(0)
    block = MSAB(D, HEADS, D_FF, dropout=0.0, norm_first=norm_first).double().eval()
    randomise_norms(block)
    layer = torch_encoder_layer(block, norm_first)
    x = torch.randn(2, 6, D, dtype=torch.float64)
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]]).bool()
    out = block(x, mask=mask)
    expected = layer(x, src_key_padding_mask=~mask)
    torch.testing.assert_close(out[mask], expected[mask])


@pytest.mark.parametrize("norm_first", [True, False])
def test_msab_causal_matches_torch_encoder_layer(norm_first: bool) -> None:
    torch.manual_seed(1)
    block = MSAB(D, HEADS, D_FF, norm_first=norm_first).double().eval()
    randomise_norms(block)
    layer = torch_encoder_layer(block, norm_first)
    x = torch.randn(2, 5, D, dtype=torch.float64)
    causal = nn.Transformer.generate_square_subsequent_mask(5, dtype=torch.float64)
    torch.testing.assert_close(block(x, is_causal=True), layer(x, src_mask=causal))


def explicit_cross_mab(mab: MAB, x: Tensor, y: Tensor, y_mask: Tensor) -> Tensor:
    """Pre-LN MAB(X, Y) written out with torch's MHA, F.layer_norm and an explicit GELU MLP."""
    torch_mha = nn.MultiheadAttention(D, HEADS, batch_first=True).double().eval()
    copy_attention(mab.attn, torch_mha)
    ln = mab.norm_attn
    xn = F.layer_norm(x, (D,), ln.weight, ln.bias)
    yn = F.layer_norm(y, (D,), ln.weight, ln.bias)
    h = x + torch_mha(xn, yn, yn, key_padding_mask=~y_mask, need_weights=False)[0]
    ln2 = mab.norm_ffn
    hn = F.layer_norm(h, (D,), ln2.weight, ln2.bias)
    hidden = F.gelu(hn @ mab.ffn.fc.weight.T + mab.ffn.fc.bias)
    return h + hidden @ mab.ffn.proj.weight.T + mab.ffn.proj.bias


def test_pre_ln_cross_mab_matches_explicit_formula() -> None:
    torch.manual_seed(2)
    mab = MAB(D, HEADS, D_FF, norm_first=True).double().eval()
    randomise_norms(mab)
    x = torch.randn(2, 3, D, dtype=torch.float64)
    y = torch.randn(2, 7, D, dtype=torch.float64)
    y_mask = torch.tensor([[1, 1, 1, 1, 1, 1, 1], [1, 0, 1, 0, 1, 0, 0]]).bool()
    torch.testing.assert_close(mab(x, y, y_mask=y_mask), explicit_cross_mab(mab, x, y, y_mask))


def test_imsab_is_mab_of_x_and_mab_of_inducing_points_and_x() -> None:
    torch.manual_seed(3)
    block = IMSAB(D, HEADS, D_FF, num_inducing=4, norm_first=True).double().eval()
    randomise_norms(block)
    x = torch.randn(2, 6, D, dtype=torch.float64)
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 0, 1, 0, 0]]).bool()
    inducing = block.inducing.detach().unsqueeze(0).expand(2, -1, -1)
    summary = explicit_cross_mab(block.mab_in, inducing, x, mask)  # (B, M, D)
    every_key = torch.ones(2, 4, dtype=torch.bool)
    expected = explicit_cross_mab(block.mab_out, x, summary, every_key)
    torch.testing.assert_close(block(x, mask=mask), expected)


@pytest.mark.parametrize("kind", ["msab", "imsab"])
@pytest.mark.parametrize("norm_first", [True, False])
def test_padded_elements_do_not_change_real_outputs(kind: str, norm_first: bool) -> None:
    torch.manual_seed(4)
    if kind == "msab":
        block: nn.Module = MSAB(D, HEADS, D_FF, norm_first=norm_first).eval()
    else:
        block = IMSAB(D, HEADS, D_FF, num_inducing=3, norm_first=norm_first).eval()
    x = torch.randn(2, 5, D)
    padded = torch.cat([x, 100 * torch.randn(2, 4, D)], dim=1)  # finite garbage
    mask = torch.cat([torch.ones(2, 5), torch.zeros(2, 4)], dim=1).bool()
    torch.testing.assert_close(block(padded, mask=mask)[:, :5], block(x), atol=1e-5, rtol=1e-5)


def test_feed_forward_formula_and_unknown_activation() -> None:
    torch.manual_seed(5)
    ffn = FeedForward(D, D_FF, activation="relu").eval()
    x = torch.randn(4, D)
    expected = torch.clamp(x @ ffn.fc.weight.T + ffn.fc.bias, min=0) @ ffn.proj.weight.T
    torch.testing.assert_close(ffn(x), expected + ffn.proj.bias)
    with pytest.raises(RegistryError, match="gelu"):
        FeedForward(D, D_FF, activation="swishy")
