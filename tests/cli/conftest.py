"""Shared fixtures of the command-line tests: a tiny model saved as a local Hugging Face folder, small preference
files, and ``trained_tiny``, one ``tidpo train`` run with and one without LoRA per test session (reused by the
eval tests here and by the explain tests)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.tiny import make_model, make_tokenizer, one_torch_thread
from tests.training.helpers import sentiment_pairs
from tidpo.cli.main import main as tidpo


@pytest.fixture(autouse=True)
def single_thread():
    with one_torch_thread():
        yield


def write_jsonl(path: Path, rows) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


@dataclass(frozen=True)
class TinyAssets:
    """A tiny causal LM + tokenizer folder, and training/held-out pair files in the standard format."""

    base: Path
    train_file: Path
    eval_file: Path


@pytest.fixture(scope="session")
def tiny_assets(tmp_path_factory) -> TinyAssets:
    root = tmp_path_factory.mktemp("tiny-assets")
    tokenizer = make_tokenizer()
    make_model(tokenizer, seed=0).save_pretrained(root / "base")
    tokenizer.save_pretrained(root / "base")
    pairs = sentiment_pairs(12).to_list()
    return TinyAssets(
        root / "base", write_jsonl(root / "train.jsonl", pairs[:8]), write_jsonl(root / "eval.jsonl", pairs[8:])
    )


# Four optimizer steps of the paper preset (attribution, KL and anchors all on), small enough for 2 CPU cores.
QUICK_TRAIN = [
    "--max_steps", "4", "--per_device_train_batch_size", "2", "--per_device_eval_batch_size", "4",
    "--learning_rate", "1e-2", "--logging_steps", "1", "--max_length", "32", "--anchor_max_new_tokens", "4",
    "--use_cpu", "--seed", "0", "--disable_tqdm", "true", "--dataloader_num_workers", "0",
]  # fmt: skip


def train_args(assets: TinyAssets, output_dir: Path, *extra: str) -> list[str]:
    """``tidpo train`` arguments of a quick run on the tiny assets."""
    return [
        "train", "--model", str(assets.base), "--dataset", str(assets.train_file),
        "--eval_dataset", str(assets.eval_file), "--output_dir", str(output_dir), *QUICK_TRAIN, *extra,
    ]  # fmt: skip


@dataclass(frozen=True)
class TrainedTiny:
    """Output folders of ``tidpo train`` on the tiny assets: ``lora`` (an adapter over ``assets.base``, with
    ``--eval_before``) and ``full`` (every weight trained, ``--report_to tensorboard``)."""

    assets: TinyAssets
    lora: Path
    full: Path


@pytest.fixture(scope="session")
def trained_tiny(tmp_path_factory, tiny_assets) -> TrainedTiny:
    root = tmp_path_factory.mktemp("trained-tiny")
    with one_torch_thread():
        lora_args = train_args(tiny_assets, root / "lora", "--use_lora", "--lora_r", "4", "--eval_before")
        assert tidpo(lora_args) == 0
        assert tidpo(train_args(tiny_assets, root / "full", "--report_to", "tensorboard")) == 0
    return TrainedTiny(tiny_assets, root / "lora", root / "full")
