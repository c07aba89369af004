"""Small synthetic preference sets and trainer builders for the training tests."""

from __future__ import annotations

import pytest
import torch
from datasets import Dataset
from peft import LoraConfig
from transformers import Qwen2Config, Qwen2ForCausalLM

from tests.device import current_device
from tests.tiny import make_model
from tidpo import TIDPOConfig, TIDPOTrainer
from tidpo.data import PreferenceCollator, tokenize_preference_dataset

TOPICS = ["cats", "dogs", "the movie", "the film", "the story", "the plot", "the actor", "the weather"]
GOOD = ["good", "great", "fine"]
BAD = ["bad", "awful", "not good"]


def sentiment_pairs(n: int) -> Dataset:
    """A learnable preference: the chosen response praises the topic, the rejected one pans it."""
    rows = []
    for i in range(n):
        topic = TOPICS[i % len(TOPICS)]
        rows.append(
            {
                "prompt": f"Human: tell me about {topic} \n Assistant:",
                "chosen": f" {topic} is very {GOOD[i % 3]} .",
                "rejected": f" {topic} is very {BAD[(i // 3) % 3]} .",
            }
        )
    return Dataset.from_list(rows)


def config(tmp_path, **overrides) -> TIDPOConfig:
    """A CPU config for tiny-model runs: no saving, no reporting, fixed seed."""
    base = {
        "preset": "paper",  # the full method (attribution, anchors, triplet), whatever the library's default
        "output_dir": str(tmp_path / "out"),
        "per_device_train_batch_size": 2,
        "max_steps": 1,
        "learning_rate": 1e-2,
        "logging_steps": 1,
        "save_strategy": "no",
        "report_to": "none",
        "use_cpu": current_device().type == "cpu",
        "dataloader_pin_memory": current_device().type == "cpu",  # batches are built on the test device already
        "seed": 0,
        "max_length": 64,
        "anchor_max_new_tokens": 6,
        "dataloader_num_workers": 0,
        "disable_tqdm": True,
    }
    return TIDPOConfig(**{**base, **overrides})


def param_snapshot(model) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def varied_pairs(n: int) -> Dataset:
    """Pairs whose prompts and responses differ in length from pair to pair (4 pairs: rows of 7 to 21 tokens), so
    a batch holds much padding."""
    filler = "please tell me about the movie and the story and the plot".split()
    rows = []
    for i in range(n):
        topic = TOPICS[i % len(TOPICS)]
        rows.append(
            {
                "prompt": f"Human: {' '.join(filler[: 2 * (i % 5)])} {topic} \n Assistant:",
                "chosen": f" {topic} is {'very ' * (3 * (i % 3))}{GOOD[i % 3]} .",
                "rejected": f" {BAD[i % 3]} .",
            }
        )
    return Dataset.from_list(rows)


def collated_batch(tokenizer, n: int = 4, pairs=sentiment_pairs) -> dict[str, torch.Tensor]:
    """One collated batch of ``n`` pairs (``2n`` rows)."""
    data = tokenize_preference_dataset(pairs(n), tokenizer, max_length=64, name="train")
    return PreferenceCollator(tokenizer.pad_token_id)([data[i] for i in range(n)])


def qwen2_model(tokenizer, seed: int = 0) -> Qwen2ForCausalLM:
    """A tiny Qwen2 (biased q/k/v projections) with tied input and output embeddings."""
    torch.manual_seed(seed)
    config = Qwen2Config(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=256, pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id, bos_token_id=None, tie_word_embeddings=True,
    )  # fmt: skip
    return Qwen2ForCausalLM(config)


BUILDERS = {"llama": make_model, "qwen2-tied": qwen2_model}  # tiny models with and without biases and tying

STEP_METRICS = (
    "loss", "rewards/chosen", "rewards/margins", "logps/rejected", "kl/rejected", "triplet/loss", "weights/max",
)  # fmt: skip


def assert_same_step(trainer, other, metrics=STEP_METRICS) -> None:
    """Same logged metrics of the first step and same parameters after it (1e-5)."""
    log, other_log = trainer.state.log_history[0], other.state.log_history[0]
    for key in metrics:
        assert log[key] == pytest.approx(other_log[key], abs=1e-5), key
    params = param_snapshot(other.model)
    for name, value in param_snapshot(trainer.model).items():
        torch.testing.assert_close(value, params[name], atol=1e-5, rtol=0, msg=name)


def make_trainer(tokenizer, tmp_path, data=None, **overrides) -> TIDPOTrainer:
    """A tiny policy (seed 1) against a separate tiny reference (seed 0), not trained; routes resolved."""
    return TIDPOTrainer(
        model=make_model(tokenizer, seed=1),
        ref_model=make_model(tokenizer, seed=0),
        args=config(tmp_path, **overrides),
        train_dataset=data if data is not None else sentiment_pairs(4),
        processing_class=tokenizer,
    )


def one_sgd_step(tokenizer, tmp_path, lora: bool = False, builder=make_model, data=None, **overrides):
    """One SGD step (learning rate 0.5, 4 pairs, 4-token anchors) of a tiny policy (seed 1) against a separate
    reference (seed 0), or with LoRA against the policy with its adapters off. Returns the trainer and the
    ``(rows, length)`` of every batch the policy's first layer ran."""
    args = config(
        tmp_path, per_device_train_batch_size=4, optim="sgd", learning_rate=0.5, anchor_max_new_tokens=4, **overrides
    )
    model = builder(tokenizer, seed=1)
    shapes = []
    model.model.layers[0].register_forward_hook(lambda module, args, out: shapes.append(tuple(args[0].shape[:2])))
    trainer = TIDPOTrainer(
        model=model,
        ref_model=None if lora else builder(tokenizer, seed=0),
        args=args,
        train_dataset=data if data is not None else sentiment_pairs(4),
        processing_class=tokenizer,
        peft_config=LoraConfig(r=4, target_modules=["q_proj", "v_proj", "up_proj"]) if lora else None,
    )
    trainer.train()
    return trainer, shapes
