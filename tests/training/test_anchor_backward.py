"""``anchor_backward="deferred"`` (the anchors' graph rebuilt after the main backward, for a lower peak memory)
gives the same parameters as one joint backward, also across gradient accumulation."""

from __future__ import annotations

import pytest
import torch
from transformers import Trainer

from tests.tiny import make_model
from tests.training.helpers import config, param_snapshot, sentiment_pairs
from tidpo import TIDPOTrainer


def _step(tokenizer, tmp_path, mode: str, accumulation: int, share: bool = True):
    args = config(
        tmp_path, per_device_train_batch_size=4 // accumulation, gradient_accumulation_steps=accumulation,
        optim="sgd", learning_rate=0.5, anchor_backward=mode, triplet_weight=5.0, triplet_margin=0.5,
        share_prompt=share,
    )  # fmt: skip
    trainer = TIDPOTrainer(
        model=make_model(tokenizer, seed=1), ref_model=make_model(tokenizer, seed=0), args=args,
        train_dataset=sentiment_pairs(4), processing_class=tokenizer,
    )  # fmt: skip
    trainer.train()
    return trainer


@pytest.mark.parametrize("share", [True, False])
@pytest.mark.parametrize("accumulation", [1, 2])
def test_deferred_anchor_backward_equals_joint(tokenizer, tmp_path, accumulation, share):
    """With shared prompts the deferred gradient moves from the anchors' own frame to whole rows; without, it
    stays in whole rows."""
    runs = {m: _step(tokenizer, tmp_path, m, accumulation, share) for m in ("deferred", "joint")}
    logs = {m: runs[m].state.log_history[0] for m in runs}
    assert logs["joint"]["triplet/loss"] > 0.0  # the hinge is active, so the anchors do get a gradient
    assert logs["deferred"]["triplet/loss"] == pytest.approx(logs["joint"]["triplet/loss"], abs=1e-6)
    joint = param_snapshot(runs["joint"].model)
    for name, value in param_snapshot(runs["deferred"].model).items():
        torch.testing.assert_close(value, joint[name], atol=1e-6, rtol=0, msg=name)


def test_the_deferred_backward_carries_the_anchor_gradient(tokenizer, tmp_path, monkeypatch):
    """Skipping the rebuilt anchors' backward changes the step, so that backward is not a no-op."""
    full = param_snapshot(_step(tokenizer, tmp_path, "deferred", 1).model)
    monkeypatch.setattr(TIDPOTrainer, "training_step", Trainer.training_step)  # main backward only
    partial = param_snapshot(_step(tokenizer, tmp_path, "deferred", 1).model)
    assert any(not torch.allclose(full[n], partial[n], atol=1e-6) for n in full)
