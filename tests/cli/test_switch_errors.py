"""The mistakes a TRL user makes first end in one line and exit 2 (no traceback): conversational data without a
chat template, --push_to_hub offline, a --report_to integration that is not installed; an image column is refused
and other unused columns are named in a warning."""

from __future__ import annotations

import importlib.util
import logging

import pytest

from tests.cli.conftest import write_jsonl
from tests.cli.test_errors import run_error, train
from tests.tiny import make_model, make_tokenizer
from tidpo.data import PreferenceDataError, load_preference_data, tokenize_preference_dataset

CHAT_ROW = {
    "prompt": [{"role": "user", "content": "hello"}],
    "chosen": [{"role": "assistant", "content": "thanks"}],
    "rejected": [{"role": "assistant", "content": "sorry"}],
}


@pytest.fixture
def no_template_model(tmp_path):
    tokenizer = make_tokenizer()
    tokenizer.chat_template = None
    make_model(tokenizer).save_pretrained(tmp_path / "plain")
    tokenizer.save_pretrained(tmp_path / "plain")
    return tmp_path / "plain"


def test_conversational_data_without_chat_template(capsys, tmp_path, no_template_model):
    data = write_jsonl(tmp_path / "chat.jsonl", [CHAT_ROW] * 2)
    message = run_error(capsys, train(no_template_model, data, tmp_path, "--use_cpu"))
    assert "conversational" in message and "no chat template" in message


def test_push_to_hub_offline(capsys, tmp_path, tiny_assets):
    message = run_error(capsys, train(tiny_assets.base, tiny_assets.train_file, tmp_path, "--push_to_hub", "true"))
    assert "--push_to_hub needs the Hugging Face Hub" in message and "HF_HUB_OFFLINE=0" in message


@pytest.mark.skipif(importlib.util.find_spec("wandb") is not None, reason="wandb is installed here")
def test_report_to_wandb_not_installed(capsys, tmp_path, tiny_assets):
    message = run_error(capsys, train(tiny_assets.base, tiny_assets.train_file, tmp_path, "--report_to", "wandb"))
    assert message.endswith("--report_to wandb needs the 'wandb' package: pip install wandb (or drop it)")


def test_use_peft_is_an_alias_not_a_typo(capsys, tmp_path, tiny_assets):
    message = run_error(capsys, train(tiny_assets.base, tiny_assets.train_file, tmp_path, "--use_peft", "--lora_rr"))
    assert "--lora_rr" in message and "use_cpu" not in message


def test_image_column_is_refused(tokenizer):
    data = load_preference_data(
        _dataset([{"prompt": "hello", "chosen": " thanks", "rejected": " sorry", "images": "x"}])
    )
    with pytest.raises(PreferenceDataError, match="column 'images': tidpo trains text-only"):
        tokenize_preference_dataset(data, tokenizer)


def test_unused_columns_are_named(tokenizer, caplog):
    data = load_preference_data(
        _dataset([{"prompt": "hello", "chosen": " thanks", "rejected": " sorry", "tools": "[]", "id": 3}])
    )
    with caplog.at_level(logging.WARNING, logger="tidpo.data"):
        tokenize_preference_dataset(data, tokenizer)
    assert "column(s) 'tools', 'id' are not used in training ('tools' is not passed" in caplog.text


def _dataset(rows):
    from datasets import Dataset

    return Dataset.from_list(rows)
