"""Small synthetic preference sets and trainer builders for the training tests."""

from __future__ import annotations

import torch
from datasets import Dataset

from tidpo import TIDPOConfig

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
        "output_dir": str(tmp_path / "out"),
        "per_device_train_batch_size": 2,
        "max_steps": 1,
        "learning_rate": 1e-2,
        "logging_steps": 1,
        "save_strategy": "no",
        "report_to": "none",
        "use_cpu": True,
        "seed": 0,
        "max_length": 64,
        "anchor_max_new_tokens": 6,
        "dataloader_num_workers": 0,
        "disable_tqdm": True,
    }
    return TIDPOConfig(**{**base, **overrides})


def param_snapshot(model) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters()}
