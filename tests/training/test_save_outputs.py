"""``trainer.save_model()`` from Python writes what ``tidpo train`` writes (card, metrics.jsonl, curves), and an
adapter trained on the built-in model names it by its name, never by this machine's cache folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from peft import LoraConfig

from tests.tiny import make_model, make_tokenizer
from tests.training.helpers import config, sentiment_pairs
from tidpo import TIDPOTrainer

LORA = LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", task_type="CAUSAL_LM")


@pytest.fixture
def builtin_cache(tmp_path, monkeypatch):
    """A tiny model standing in for the converted built-in SmolLM2 (the cache layout tidpo reads)."""
    monkeypatch.setenv("TIDPO_CACHE", str(tmp_path / "cache"))
    folder = tmp_path / "cache" / "models" / "smollm2-135m-instruct"
    tokenizer = make_tokenizer()
    make_model(tokenizer).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def _train_and_save(tmp_path, model, **kwargs):
    trainer = TIDPOTrainer(model=model, args=config(tmp_path, max_steps=2, baseline="dpo"),
                           train_dataset=sentiment_pairs(4), **kwargs)  # fmt: skip
    trainer.train()
    trainer.save_model()
    return trainer, tmp_path / "out"


def test_save_model_writes_card_metrics_and_curves(tmp_path, tokenizer):
    trainer, out = _train_and_save(tmp_path, make_model(tokenizer), processing_class=tokenizer, peft_config=LORA)
    card = (out / "README.md").read_text()
    assert "TI-DPO" in card and "| lora_r | 4 |" in card and "Trained from Python" in card
    assert "Model Card for Model ID" not in card  # PEFT's blank template is replaced
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert rows == json.loads(json.dumps(trainer.state.log_history))  # every logged row, once
    assert any("rewards/margins" in row for row in rows)
    assert (out / "training_curves.png").stat().st_size > 1000


def test_adapter_on_builtin_model_names_it_portably(tmp_path, builtin_cache):
    _, out = _train_and_save(tmp_path, "smollm2-135m-instruct", peft_config=LORA)
    adapter = json.loads((out / "adapter_config.json").read_text())
    assert adapter["base_model_name_or_path"] == "smollm2-135m-instruct"
    card = (out / "README.md").read_text()
    assert "SmolLM2-135M-Instruct.Q4_1.gguf" in card and "not the Hub checkpoint's" in card
    assert "base_model: HuggingFaceTB/SmolLM2-135M-Instruct" in card
    from tidpo.cli.common import load_causal_lm

    model, _ = load_causal_lm(str(out))  # the built-in name resolves back to the cached base
    assert type(model).__name__ == "PeftModelForCausalLM"


def test_model_loaded_from_the_cache_path_is_named_portably(tmp_path, builtin_cache):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(builtin_cache)  # a user who found the cache folder
    _, out = _train_and_save(tmp_path, model, processing_class=AutoTokenizer.from_pretrained(builtin_cache),
                             peft_config=LORA)  # fmt: skip
    assert json.loads((out / "adapter_config.json").read_text())["base_model_name_or_path"] == "smollm2-135m-instruct"


def test_user_given_relative_path_is_kept(tmp_path, monkeypatch, tokenizer):
    monkeypatch.chdir(tmp_path)
    make_model(tokenizer).save_pretrained("base")
    tokenizer.save_pretrained("base")
    _, out = _train_and_save(tmp_path, "base", peft_config=LORA)
    assert json.loads((out / "adapter_config.json").read_text())["base_model_name_or_path"] == "base"


def test_a_save_killed_midway_leaves_the_saved_model_as_it_was(tmp_path, tokenizer, monkeypatch):
    """The final model is written into staging and moved into place: a save that dies after the new weights were
    written (at the tokenizer) changes nothing in the folder; the next save completes and leaves no staging."""
    from tidpo.training import checkpoints

    trainer, out = _train_and_save(tmp_path, make_model(tokenizer), processing_class=tokenizer)
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    assert "model.safetensors" in before and not (out / checkpoints.STAGING).exists()
    with torch.no_grad():
        next(trainer.model.parameters()).add_(1.0)  # a model that differs from the saved one

    def dies(*args, **kwargs):
        raise KeyboardInterrupt  # the process dies after the weights, before the tokenizer files

    monkeypatch.setattr(trainer.processing_class, "save_pretrained", dies)
    with pytest.raises(KeyboardInterrupt):
        trainer.save_model()
    assert (out / checkpoints.STAGING / "model" / "model.safetensors").is_file()  # the new weights were written
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before
    monkeypatch.undo()
    trainer.save_model()
    assert not (out / checkpoints.STAGING).exists()
    assert (out / "model.safetensors").read_bytes() != before["model.safetensors"]
    assert (out / "tokenizer.json").is_file() and (out / "README.md").is_file()
    assert (out / "metrics.jsonl").read_bytes() == before["metrics.jsonl"]


def test_publish_files_moves_the_weights_last(tmp_path, monkeypatch):
    from tidpo.training import checkpoints

    staged, folder = tmp_path / "stage" / "model", tmp_path / "out"
    for name in ("model.safetensors", "config.json", "sub/adapter_model.bin", "README.md"):
        (staged / name).parent.mkdir(parents=True, exist_ok=True)
        (staged / name).write_text(name)
    folder.mkdir()
    (folder / "config.json").write_text("old")
    moved = []
    replace = checkpoints.os.replace
    monkeypatch.setattr(checkpoints.os, "replace", lambda a, b: (moved.append(Path(b).name), replace(a, b)))
    checkpoints.publish_files(staged, folder)
    assert sorted(moved[:2]) == ["README.md", "config.json"]
    assert sorted(moved[2:]) == ["adapter_model.bin", "model.safetensors"]
    assert (folder / "config.json").read_text() == "config.json" and (folder / "sub/adapter_model.bin").is_file()
    assert not staged.exists() and not staged.parent.exists()
