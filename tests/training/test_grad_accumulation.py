"""Batch × accumulation invariance with the full TI-DPO loss (hybrid weights, TDPO2 KL; γ = 0 since anchors are
random): one optimiser step on 4 pairs gives the same parameters as 2 pairs × 2 accumulation steps."""

import torch

from tests.tiny import make_model
from tests.training.helpers import config, param_snapshot, sentiment_pairs
from tidpo import TIDPOTrainer


def _one_step(tokenizer, tmp_path, batch_size: int, accumulation: int):
    args = config(
        tmp_path,
        per_device_train_batch_size=batch_size,
        gradient_accumulation_steps=accumulation,
        triplet_weight=0.0,
        optim="sgd",
        learning_rate=0.5,
        lr_scheduler_type="constant",
    )
    trainer = TIDPOTrainer(
        model=make_model(tokenizer, seed=1),
        ref_model=make_model(tokenizer, seed=0),
        args=args,
        train_dataset=sentiment_pairs(4),
        processing_class=tokenizer,
    )
    before = param_snapshot(trainer.model)
    trainer.train()
    return before, param_snapshot(trainer.model)


def test_batch_4_equals_batch_2_times_accumulation_2(tokenizer, tmp_path):
    before, full = _one_step(tokenizer, tmp_path, batch_size=4, accumulation=1)
    _, accumulated = _one_step(tokenizer, tmp_path, batch_size=2, accumulation=2)
    moved = max((full[n] - before[n]).abs().max().item() for n in full)
    assert moved > 1e-3  # the step really changed the weights
    for name in full:
        torch.testing.assert_close(accumulated[name], full[name], atol=1e-5, rtol=0, msg=name)
