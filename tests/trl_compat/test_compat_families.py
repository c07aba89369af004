"""The scenarios of TRL's DPOTrainer tests on the model families of its tests, built in code
(tests/trl_compat/families.py): DPO's loss against TRL's on the same batch, a training step that moves the
weights (full and LoRA), and conversational tool-calling data."""

from __future__ import annotations

import math

import pytest
import torch
import trl
from peft import LoraConfig

from tests.training.helpers import config, sentiment_pairs
from tests.trl_compat.families import FAMILIES
from tests.trl_compat.tool_data import tool_rows, tool_tokenizer
from tidpo import TIDPOTrainer
from tidpo.training.trl_compat import from_dpo_config


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_dpo_loss_equals_trls(tokenizer, tmp_path, family):
    build = FAMILIES[family]
    args = trl.DPOConfig(
        output_dir=str(tmp_path),
        use_cpu=True,
        report_to="none",
        bf16=False,
        gradient_checkpointing=False,
        beta=0.1,
        max_length=64,
    )
    common = {"train_dataset": sentiment_pairs(3), "processing_class": tokenizer}
    ours = TIDPOTrainer(
        model=build(tokenizer, seed=1),
        ref_model=build(tokenizer, seed=0),
        args=from_dpo_config(args, baseline="dpo"),
        **common,
    )
    theirs = trl.DPOTrainer(model=build(tokenizer, seed=1), ref_model=build(tokenizer, seed=0), args=args, **common)
    ours.model.train(), theirs.model.train()
    losses = [t.compute_loss(t.model, t.data_collator([t.train_dataset[i] for i in range(3)])) for t in (ours, theirs)]
    torch.testing.assert_close(losses[0], losses[1], atol=1e-5, rtol=0)


@pytest.mark.parametrize("family", sorted(FAMILIES))
@pytest.mark.parametrize("lora", [False, True])
def test_ti_dpo_step_moves_the_trained_weights(tokenizer, tmp_path, family, lora):
    build = FAMILIES[family]
    peft = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]) if lora else None
    trainer = TIDPOTrainer(
        model=build(tokenizer, seed=1),
        ref_model=None if lora else build(tokenizer, seed=0),
        args=config(tmp_path, learning_rate=0.05),
        train_dataset=sentiment_pairs(4),
        processing_class=tokenizer,
        peft_config=peft,
    )
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    assert math.isfinite(trainer.train().training_loss)
    moved = {n for n, p in trainer.model.named_parameters() if not torch.equal(p, before[n])}
    if lora:
        assert moved and all("lora_" in n for n in moved)  # the base weights stay as they were (the reference)
    else:
        embedding = trainer.model.get_input_embeddings().weight
        names = {n for n, p in trainer.model.named_parameters() if p is embedding}
        assert names & moved and any("layers.1." in n for n in moved)


@pytest.mark.parametrize("family", ["qwen2", "qwen3_moe"])
def test_tool_calling_data_trains(tmp_path, family):
    tokenizer = tool_tokenizer()
    build = FAMILIES[family]
    trainer = TIDPOTrainer(
        model=build(tokenizer, seed=1),
        ref_model=build(tokenizer, seed=0),
        args=config(tmp_path, max_steps=2, eval_strategy="steps", eval_steps=2),
        train_dataset=tool_rows(4),
        eval_dataset=tool_rows(2),
        processing_class=tokenizer,
    )
    result = trainer.train()
    assert math.isfinite(result.training_loss)
    evaluation = [row for row in trainer.state.log_history if "eval_loss" in row]
    assert evaluation and math.isfinite(evaluation[-1]["eval_loss"])
