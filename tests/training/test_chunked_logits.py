"""The chunked LM-head route (``chunked_logits=True``, the default) trains exactly like full logits, never runs
the (rows, length, vocab) head matmul, and steps aside with a warning for heads it cannot serve."""

from __future__ import annotations

import logging

import pytest
import torch

from tests.tiny import make_model
from tests.training.helpers import config, one_sgd_step, param_snapshot, sentiment_pairs
from tidpo import TIDPOTrainer

METRICS = ("loss", "rewards/chosen", "rewards/margins", "logps/rejected", "kl/rejected", "triplet/loss")


def _train(tokenizer, tmp_path, chunked: bool, lora: bool = False, **overrides):
    return one_sgd_step(tokenizer, tmp_path, lora, chunked_logits=chunked, logits_chunk_size=5, **overrides)[0]


@pytest.mark.parametrize("lora", [False, True])
def test_one_full_ti_dpo_step_equals_full_logits(tokenizer, tmp_path, lora):
    """Paper preset with anchors (γ = 0.1): same parameters and same logged metrics (1e-5)."""
    runs = {c: _train(tokenizer, tmp_path, chunked=c, lora=lora) for c in (True, False)}
    assert runs[True].routes.head == "chunked" and runs[False].routes.head == "full logits"
    logs = {c: runs[c].state.log_history[0] for c in runs}
    for key in METRICS:
        assert logs[True][key] == pytest.approx(logs[False][key], abs=1e-5), key
    full = param_snapshot(runs[False].model)
    for name, value in param_snapshot(runs[True].model).items():
        torch.testing.assert_close(value, full[name], atol=1e-5, rtol=0, msg=name)


def test_the_vocabulary_matmul_never_runs_in_training(tokenizer, tmp_path):
    trainer_outputs = []
    model = make_model(tokenizer, seed=1)
    model.lm_head.register_forward_hook(lambda module, args, out: trainer_outputs.append(out.shape[-1]))
    args = config(tmp_path, per_device_train_batch_size=4, triplet_weight=0.0)
    TIDPOTrainer(
        model=model, ref_model=make_model(tokenizer), args=args, train_dataset=sentiment_pairs(4),
        processing_class=tokenizer,
    ).train()  # fmt: skip
    assert trainer_outputs and set(trainer_outputs) == {model.config.hidden_size}


def test_a_head_with_logit_softcapping_uses_full_logits_and_says_so(tokenizer, tmp_path, caplog):
    model = make_model(tokenizer, seed=1)
    model.config.final_logit_softcapping = 30.0
    with caplog.at_level(logging.WARNING, logger="tidpo"):
        trainer = TIDPOTrainer(
            model=model, ref_model=make_model(tokenizer), args=config(tmp_path), train_dataset=sentiment_pairs(4),
            processing_class=tokenizer,
        )  # fmt: skip
    assert trainer.routes.head == "full logits"
    assert "final_logit_softcapping = 30.0" in caplog.text and "tidpo routes:" in caplog.text
    assert "chunked_logits" in trainer.routes.fallbacks[0]
