"""A PEFT model that arrives with a trained adapter and no ref_model: π_ref is a frozen copy of that adapter (as in
TRL 1.16), not the base model, so training starts at log-ratio 0; loss and gradients equal TRL's on the same batch."""

import copy
import math

import pytest
import torch
from peft import LoraConfig, get_peft_model

from tests.tiny import make_model
from tests.training.helpers import config, varied_pairs
from tidpo import TIDPOTrainer
from tidpo.training.ref_cache import weights_digest
from tidpo.training.reference import REF_ADAPTER, add_reference_adapter
from tidpo.training.trl_compat import from_dpo_config

trl = pytest.importorskip("trl")
PAIRS = 4


def _adapted(tokenizer, seed: int = 1):
    """A tiny Llama with a LoRA adapter whose B is not zero (an adapter that was trained: it moves the outputs)."""
    lora = LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=["q_proj", "v_proj", "up_proj"])
    model = get_peft_model(make_model(tokenizer, seed=1), lora)
    torch.manual_seed(seed)  # after make_model, which seeds its own draws
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.05)
    return model


def _dpo_config(path):
    return trl.DPOConfig(
        output_dir=str(path), beta=0.1, max_length=64, report_to="none", use_cpu=True, gradient_checkpointing=False,
        bf16=False,
    )  # fmt: skip


def _loss_and_grads(trainer, batch):
    trainer.model.train()
    trainer.model.zero_grad(set_to_none=True)
    loss = trainer.compute_loss(trainer.model, batch)
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in trainer.model.named_parameters() if p.grad is not None}


def test_the_reference_is_the_adapter_it_arrived_with_as_in_trl(tokenizer, tmp_path):
    model = _adapted(tokenizer)
    theirs = trl.DPOTrainer(
        model=copy.deepcopy(model), args=_dpo_config(tmp_path / "trl"), train_dataset=varied_pairs(PAIRS),
        processing_class=tokenizer,
    )  # fmt: skip
    ours = TIDPOTrainer(
        model=copy.deepcopy(model), args=from_dpo_config(_dpo_config(tmp_path / "ours"), baseline="dpo"),
        train_dataset=varied_pairs(PAIRS), processing_class=tokenizer,
    )  # fmt: skip
    batch = ours.data_collator([ours.train_dataset[i] for i in range(PAIRS)])
    our_loss, our_grads = _loss_and_grads(ours, batch)
    trl_loss, trl_grads = _loss_and_grads(theirs, theirs.data_collator([theirs.train_dataset[i] for i in range(4)]))
    assert our_loss.item() == pytest.approx(math.log(2), abs=1e-6)  # log-ratio 0: π_ref is the adapted policy
    torch.testing.assert_close(our_loss, trl_loss, atol=2e-5, rtol=1e-4)
    assert our_grads.keys() == trl_grads.keys() and all(f".{REF_ADAPTER}." not in n for n in our_grads)
    for name in our_grads:
        torch.testing.assert_close(our_grads[name], trl_grads[name], atol=2e-5, rtol=1e-4, msg=name)
    with ours.engine.live_reference.module(ours.model) as reference:  # the adapter copy, not the base (adapters off)
        with_copy = reference(input_ids=batch["input_ids"]).logits
    with ours.model.disable_adapter(), torch.no_grad():
        base = ours.model(input_ids=batch["input_ids"]).logits
    assert (with_copy - base).abs().max() > 1e-3


def test_training_moves_the_adapter_and_leaves_its_copy(tokenizer, tmp_path):
    trainer = TIDPOTrainer(
        model=_adapted(tokenizer), args=config(tmp_path, max_steps=2, learning_rate=0.5, optim="sgd"),
        train_dataset=varied_pairs(PAIRS), processing_class=tokenizer,
    )  # fmt: skip
    params = dict(trainer.model.named_parameters())
    before = {n: p.detach().clone() for n, p in params.items() if "lora_" in n}
    trainer.train()
    moved = {n for n in before if not torch.equal(before[n], params[n])}
    assert moved and all(".default." in n for n in moved)
    assert all(not params[n].requires_grad for n in params if f".{REF_ADAPTER}." in n)
    assert all(params[n].requires_grad for n in params if ".default." in n)  # the switches left these trainable


def test_the_cache_key_sees_the_reference_adapter(tokenizer):
    first, second = _adapted(tokenizer, seed=1), _adapted(tokenizer, seed=2)
    assert weights_digest(first) == weights_digest(second)  # trained adapters are not part of π_ref
    add_reference_adapter(first)
    add_reference_adapter(second)
    assert weights_digest(first) != weights_digest(second)  # their frozen copies are


def test_an_adapter_only_evaluated_is_measured_against_its_base_model(tokenizer, tmp_path):
    """Evaluating a trained adapter (``tidpo eval --model <adapter>``, ``evaluation_only=True``) measures it against
    the base model it was trained from: the same numbers as with the base given as ref_model. A copy of the adapter
    as the reference would make every reward 0 and the accuracy 0."""
    data = varied_pairs(PAIRS)
    args = config(tmp_path, baseline="dpo")
    implicit = TIDPOTrainer(model=_adapted(tokenizer), args=args, eval_dataset=data, processing_class=tokenizer,
                            evaluation_only=True)  # fmt: skip
    assert REF_ADAPTER not in implicit.model.peft_config
    explicit = TIDPOTrainer(model=_adapted(tokenizer), ref_model=make_model(tokenizer, seed=1), args=args,
                            eval_dataset=data, processing_class=tokenizer, evaluation_only=True)  # fmt: skip
    ours, base = implicit.evaluate(), explicit.evaluate()
    assert abs(ours["eval_rewards/margins"]) > 1e-4 and abs(ours["eval_rewards/chosen"]) > 1e-4
    for key in ("eval_loss", "eval_rewards/chosen", "eval_rewards/rejected", "eval_rewards/margins"):
        assert ours[key] == pytest.approx(base[key], abs=1e-6), key
