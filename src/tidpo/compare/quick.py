"""``tidpo compare --quick``: the whole pipeline on the tests' tiny model (built in code, nothing downloaded), two
methods, two seeds, two checkpoints, in seconds. It checks the machinery, not the methods."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import tidpo

QUICK = {
    "train": "demo",
    "train_pairs": 8,
    "prompts": "demo",
    "reward": "vader",
    "recipe": {
        "use_lora": True,
        "lora_r": 4,
        "lora_alpha": 8,
        "lora_dropout": 0.0,
        "learning_rate": 0.05,
        "per_device_train_batch_size": 2,
        "max_length": 48,
        "anchor_max_new_tokens": 4,
        "use_cpu": True,
    },
    "methods": {"dpo": {"baseline": "dpo", "label": "DPO"}, "ti-dpo": {"preset": "paper", "label": "TI-DPO"}},
    "seeds": [0, 1],
    "checkpoints": [1, 2],
    "budgets": [0.005, 0.02],
    "baseline": "dpo",
    "samples": 2,
    "max_new_tokens": 4,
    "bootstrap": 200,
}


def tiny_module():
    """``tests/tiny.py`` of the source checkout tidpo runs from (the tiny model and tokenizer the tests use)."""
    path = Path(tidpo.__file__).resolve().parents[2] / "tests" / "tiny.py"
    if not path.is_file():
        where = "run it from a source checkout of tidpo"
        raise FileNotFoundError(f"--quick builds the tests' tiny model from {path}, which is not there: {where}")
    spec = importlib.util.spec_from_file_location("tidpo_tests_tiny", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def quick_model(folder: Path) -> str:
    """The tiny Llama and its word-level tokenizer saved to ``folder`` (once: a second call finds them)."""
    if not (folder / "config.json").is_file():
        tiny = tiny_module()
        tokenizer = tiny.make_tokenizer()
        tiny.make_model(tokenizer, seed=0).save_pretrained(folder)
        tokenizer.save_pretrained(folder)
    return str(folder)


def quick_spec(output: Path) -> dict:
    """The quick study's spec (a mapping, checked like a file's), its model saved under ``output``."""
    return {**QUICK, "model": quick_model(output / "tiny-model")}
