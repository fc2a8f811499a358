"""BERT masking: choose tokens to predict and hide them (80 % [MASK], 10 % random, 10 % kept)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from ltr.errors import ConfigError
from ltr.lm.data import derive_seed
from ltr.lm.model import IGNORE_INDEX

if TYPE_CHECKING:
    from ltr.lm.tokenizer import TextTokenizer


def mask_tokens(
    ids: Tensor,
    *,
    mask_id: int,
    vocab_size: int,
    special_ids: Sequence[int],
    mask_prob: float = 0.15,
    generator: torch.Generator | None = None,
    pad_mask: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """BERT masking: pick positions to predict and corrupt them.

    Each eligible position (not a special id, not padding) is chosen with probability
    ``mask_prob``. Of the chosen, 80 % become ``mask_id``, 10 % a token drawn uniformly from the
    non-special ids ``{0..vocab_size-1} \\ special_ids`` (possibly the original one) and 10 %
    stay unchanged. A row (last dimension) with at least one eligible position always gets at
    least one chosen position: if the draw chose none, one eligible position is chosen
    uniformly at random, so no row has labels that are all ``-100``. (This raises the chosen
    share above ``mask_prob`` by about ``(1 - mask_prob) ** L`` for rows of ``L`` eligible
    positions: negligible for long rows, noticeable for rows of a few tokens.)

    Args:
        ids: ``[..., L]`` integer token ids; not modified.
        mask_id: id that replaces 80 % of the chosen tokens.
        vocab_size: number of token ids.
        special_ids: ids never chosen nor drawn as random replacements.
        mask_prob: probability of choosing an eligible position, in ``(0, 1]``.
        generator: random source (on ``ids``' device or the CPU); ``None`` = torch's global one.
        pad_mask: ``[..., L]`` bool, True = a real token, False = padding (never chosen), as
            ``key_padding_mask`` everywhere in :mod:`ltr`; ``None`` = no padding.

    Returns:
        ``(inputs, labels)``: ``inputs`` ``[..., L]`` of ``ids``' dtype, the corrupted ids;
        ``labels`` ``[..., L]`` int64, the original id at chosen positions, ``-100`` elsewhere.

    Raises:
        ConfigError: ``mask_prob`` outside ``(0, 1]`` or no non-special id to draw from.
    """
    if not 0.0 < mask_prob <= 1.0:
        raise ConfigError(f"mask_prob must be in (0, 1], got {mask_prob}")
    if ids.dim() == 0:
        raise ValueError("ids must have at least one dimension [..., L]")
    if pad_mask is not None and pad_mask.shape != ids.shape:
        raise ValueError(
            f"pad_mask shape {tuple(pad_mask.shape)} differs from ids shape {tuple(ids.shape)}"
        )
    device = ids.device
    rand_device = generator.device if generator is not None else device
    special = torch.as_tensor(list(special_ids), dtype=torch.long, device=device)
    vocab = torch.arange(vocab_size, device=device)
    candidates = vocab[~torch.isin(vocab, special)]  # (K,) ids a random replacement may take
    if candidates.numel() == 0:
        raise ConfigError(
            f"every id below vocab_size {vocab_size} is special; random replacements need a "
            "vocabulary with ordinary tokens"
        )

    def uniform() -> Tensor:
        return torch.rand(ids.shape, generator=generator, device=rand_device).to(device)

    eligible = ~torch.isin(ids, special)  # (..., L)
    if pad_mask is not None:
        eligible &= pad_mask.to(device=device, dtype=torch.bool)
    chosen = eligible & (uniform() < mask_prob)  # (..., L)
    # rows where the draw chose nothing but could have: choose one eligible position at random
    fallback = uniform().masked_fill(~eligible, -1.0).argmax(dim=-1, keepdim=True)  # (..., 1)
    needs_one = eligible.any(dim=-1, keepdim=True) & ~chosen.any(dim=-1, keepdim=True)  # (..., 1)
    chosen |= torch.zeros_like(chosen).scatter_(-1, fallback, needs_one)  # (..., L)

    action = uniform()  # (..., L): [0, 0.8) mask, [0.8, 0.9) random token, [0.9, 1) keep
    to_mask = chosen & (action < 0.8)
    to_random = chosen & (action >= 0.8) & (action < 0.9)
    draws = torch.randint(
        candidates.numel(), ids.shape, generator=generator, device=rand_device
    ).to(device)  # (..., L)
    random_tokens = candidates[draws].to(ids.dtype)  # (..., L)
    inputs = torch.where(to_mask, torch.full_like(ids, mask_id), ids)  # (..., L)
    inputs = torch.where(to_random, random_tokens, inputs)  # (..., L)
    labels = torch.where(chosen, ids.long(), IGNORE_INDEX)  # (..., L)
    return inputs, labels


class MaskedCollator:
    """DataLoader ``collate_fn`` that stacks :class:`MaskedWindows` items and masks them.

    The mask of a batch is drawn from a generator seeded by ``seed``, the epoch (unless
    ``fixed``) and the batch's tokens, so it does not depend on the number of workers nor on the
    order batches arrive in, and a batch seen again in a later epoch gets a new mask. With
    ``fixed=True`` (validation) a batch gets the same mask every epoch, which keeps validation
    losses comparable.

    Call :meth:`set_epoch` before iterating a DataLoader's epoch; DataLoader workers receive a
    copy of the collator when the epoch's iterator starts, so ``persistent_workers=True`` would
    keep them at the old epoch.

    Args:
        mask_id: id of ``[MASK]``.
        vocab_size: number of token ids.
        special_ids: ids never masked nor drawn as replacements.
        mask_prob: probability of choosing a position (see :func:`mask_tokens`).
        seed: seed of the masks.
        fixed: ignore the epoch: the same batch always gets the same mask.
    """

    def __init__(
        self,
        *,
        mask_id: int,
        vocab_size: int,
        special_ids: Sequence[int],
        mask_prob: float = 0.15,
        seed: int = 0,
        fixed: bool = False,
    ) -> None:
        if not 0.0 < mask_prob <= 1.0:
            raise ConfigError(f"mask_prob must be in (0, 1], got {mask_prob}")
        self.mask_id = mask_id
        self.vocab_size = vocab_size
        self.special_ids = tuple(special_ids)
        self.mask_prob = mask_prob
        self.seed = seed
        self.fixed = fixed
        self.epoch = 0

    @classmethod
    def from_tokenizer(
        cls,
        tokenizer: TextTokenizer,
        *,
        mask_prob: float = 0.15,
        seed: int = 0,
        fixed: bool = False,
    ) -> MaskedCollator:
        """Collator with ``tokenizer``'s ``mask_id``, ``vocab_size`` and ``special_ids``."""
        return cls(
            mask_id=tokenizer.mask_id,
            vocab_size=tokenizer.vocab_size,
            special_ids=tokenizer.special_ids,
            mask_prob=mask_prob,
            seed=seed,
            fixed=fixed,
        )

    def set_epoch(self, epoch: int) -> None:
        """Draw the masks of ``epoch`` (no effect when ``fixed``)."""
        self.epoch = epoch

    def __call__(self, batch: Sequence[Tensor]) -> tuple[Tensor, Tensor]:
        """Stack ``B`` windows ``[T]`` and mask them: ``(inputs, labels)``, each ``[B, T]``."""
        x = torch.stack(list(batch))  # (B, T)
        content = hashlib.blake2b(x.cpu().numpy().tobytes(), digest_size=8).hexdigest()
        epoch = None if self.fixed else self.epoch
        generator = torch.Generator().manual_seed(derive_seed(self.seed, epoch, content))
        return mask_tokens(
            x,
            mask_id=self.mask_id,
            vocab_size=self.vocab_size,
            special_ids=self.special_ids,
            mask_prob=self.mask_prob,
            generator=generator,
        )
