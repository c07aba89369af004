"""End to end on a tiny model: 30 steps of full TI-DPO (hybrid weights, TDPO2 KL, triplet with sampled anchors)
learn a learnable preference; the same with LoRA; the saved model reloads with the same log-probs."""

import pytest
import torch
from transformers import AutoModelForCausalLM

from tests.tiny import make_model
from tests.training.helpers import config, param_snapshot, sentiment_pairs
from tidpo import TIDPOTrainer
from tidpo.ops import per_token_logps

STEPS = 30


def _train(tokenizer, tmp_path, **kwargs):
    args = config(tmp_path, max_steps=STEPS, per_device_train_batch_size=4, logging_steps=5, **kwargs.pop("args", {}))
    trainer = TIDPOTrainer(
        model=make_model(tokenizer, seed=0),
        args=args,
        train_dataset=sentiment_pairs(24),
        processing_class=tokenizer,
        **kwargs,
    )
    before = param_snapshot(trainer.model)
    trainer.train()
    logs = [entry for entry in trainer.state.log_history if "rewards/accuracies" in entry]
    return trainer, before, logs


def _batch_logps(model, trainer):
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(4)])
    model.eval()
    with torch.no_grad():
        return per_token_logps(model(input_ids=batch["input_ids"]).logits, batch["input_ids"])


def _assert_learned(trainer, before, logs, key="loss", min_drop=0.05):
    assert logs[-1][key] < logs[0][key] - min_drop, [e[key] for e in logs]
    assert logs[-1]["rewards/margins"] > logs[0]["rewards/margins"], [e["rewards/margins"] for e in logs]
    assert logs[-1]["rewards/accuracies"] > 0.8, [e["rewards/accuracies"] for e in logs]
    for key in ("kl/chosen", "triplet/loss", "weights/max", "time/attribution", "time/anchor_sampling"):
        assert all(torch.isfinite(torch.tensor(e[key])) for e in logs), key
    trainable = {n for n, p in trainer.model.named_parameters() if p.requires_grad}
    after = param_snapshot(trainer.model)
    unchanged = [n for n in trainable if torch.equal(before[n], after[n])]
    assert trainable and not unchanged, unchanged
    frozen_moved = [n for n in after if n not in trainable and not torch.equal(before[n], after[n])]
    assert not frozen_moved, frozen_moved


def test_full_tidpo_learns_and_reloads(tokenizer, tmp_path):
    trainer, before, logs = _train(tokenizer, tmp_path, args={"learning_rate": 3e-3})
    _assert_learned(trainer, before, logs)
    assert logs[-1]["weights/max"] > 1.0  # non-uniform weights were used
    trainer.save_model(str(tmp_path / "saved"))
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path / "saved")
    torch.testing.assert_close(_batch_logps(reloaded, trainer), _batch_logps(trainer.model, trainer))


def test_lora_tidpo_learns_and_reloads(tokenizer, tmp_path):
    peft = pytest.importorskip("peft")
    lora = peft.LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj", "o_proj"], lora_dropout=0.0)
    trainer, before, logs = _train(
        tokenizer, tmp_path, peft_config=lora, args={"learning_rate": 6e-2, "lr_scheduler_type": "constant"}
    )
    assert trainer.ref_model is None  # the reference is the policy with its adapters disabled
    # rank-8 adapters on three projections learn slowly in 30 steps: the base loss (without the noisy triplet
    # term) must fall, the margin grow and the accuracy pass 0.8
    _assert_learned(trainer, before, logs, key="loss/base", min_drop=0.01)
    trainer.save_model(str(tmp_path / "adapter"))
    reloaded = peft.PeftModel.from_pretrained(make_model(tokenizer, seed=0), tmp_path / "adapter")
    torch.testing.assert_close(_batch_logps(reloaded, trainer), _batch_logps(trainer.model, trainer))
