"""``benchmarks.training_throughput`` compares Lightning with a plain loop; its comparison is
only fair if it still captures ``ltr train``'s set-up and both sides compute the same training."""

from __future__ import annotations

from benchmarks.training_throughput import run_round


def test_both_sides_train_to_the_same_losses(tiny_config):
    # 157 lists in batches of 64 (a smaller last batch), a cosine schedule over 2 configured
    # epochs while the round trains 3: each side's epoch loss must weigh lists alike and follow
    # the same learning rates
    cfg = tiny_config(**{"optim.warmup_steps": 2})
    lightning_side, plain_side = run_round(cfg, epochs=3, device="cpu", plain_first=False)
    assert len(lightning_side.losses) == len(plain_side.losses) == 3
    assert lightning_side.losses == plain_side.losses
