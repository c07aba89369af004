"""A TRL user who only swaps the import keeps DPOConfig's defaults, gradient checkpointing and bf16 among them: tidpo
trains under them, with and without LoRA, and evaluates several named eval sets during training as TRL logs them."""

import pytest
import torch
from datasets import DatasetDict
from peft import LoraConfig

from tests.tiny import make_model
from tests.training.helpers import config, sentiment_pairs, varied_pairs
from tidpo import TIDPOTrainer
from tidpo.training.trl_compat import from_dpo_config

trl = pytest.importorskip("trl")


@pytest.mark.parametrize("lora", [False, True], ids=["full", "lora"])
def test_dpo_config_at_trls_defaults_trains(tokenizer, tmp_path, lora):
    dpo = trl.DPOConfig(
        output_dir=str(tmp_path), report_to="none", use_cpu=True, max_steps=2, per_device_train_batch_size=2,
        learning_rate=0.1, max_length=64, logging_steps=1,
    )  # fmt: skip
    assert dpo.gradient_checkpointing and dpo.bf16  # TRL's defaults, kept
    args = from_dpo_config(dpo)
    assert args.gradient_checkpointing and args.bf16 == dpo.bf16
    peft = LoraConfig(r=4, target_modules=["q_proj", "v_proj"], lora_dropout=0.0) if lora else None
    trainer = TIDPOTrainer(
        model=make_model(tokenizer, seed=1), args=args, train_dataset=sentiment_pairs(4), processing_class=tokenizer,
        peft_config=peft,
    )  # fmt: skip
    assert trainer.routes.layout == "whole rows"  # gradient checkpointing turns the key/value cache off
    params = dict(trainer.model.named_parameters())
    before = {n: p.detach().clone() for n, p in params.items() if p.requires_grad}
    result = trainer.train()
    assert torch.isfinite(torch.tensor(result.training_loss))
    moved = [n for n in before if not torch.equal(before[n], params[n])]
    assert moved and (not lora or all("lora_" in n for n in moved))
    assert all(torch.isfinite(p).all() for p in params.values())


@pytest.mark.parametrize("kind", ["dict", "DatasetDict"])
def test_several_named_eval_sets_during_training(tokenizer, tmp_path, kind):
    sets = {"data1": sentiment_pairs(2), "data2": varied_pairs(3)}
    trainer = TIDPOTrainer(
        model=make_model(tokenizer, seed=1),
        ref_model=make_model(tokenizer, seed=0),
        args=config(tmp_path, max_steps=2, eval_strategy="steps", eval_steps=1, triplet_weight=0.0),
        train_dataset=sentiment_pairs(4),
        eval_dataset=DatasetDict(sets) if kind == "DatasetDict" else sets,
        processing_class=tokenizer,
    )
    trainer.train()
    evals = [row for row in trainer.state.log_history if any(k.startswith("eval_") for k in row)]
    keys = set().union(*evals)
    for name in sets:
        assert {f"eval_{name}_loss", f"eval_{name}_rewards/margins"} <= keys, sorted(keys)
    train_rows = [row for row in trainer.state.log_history if "loss" in row]
    assert train_rows and all(not any(k.startswith("eval_") for k in row) for row in train_rows)
    assert all("rewards/margins" in row for row in train_rows)
    assert {r["step"] for r in evals} == {1, 2}
