"""Models and datasets by Hub id, like TRL, tested against the unreachable Hub of this machine (HF_HUB_OFFLINE=1):
the real from_pretrained / load_dataset calls run and their failure is one line saying what to do; the loading
settings (--dtype, --attn_implementation, model_init_kwargs) reach the policy and the reference."""

from __future__ import annotations

import json

import pytest
import torch

from tests.cli.test_errors import run_error, train
from tidpo.cli.main import main as tidpo
from tidpo.data import load_preference_data
from tidpo.hub import HubLoadError, looks_like_hub_id, model_init_kwargs
from tidpo.models import load_pretrained_causal_lm

MODEL_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
DATASET_ID = "Anthropic/hh-rlhf"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (MODEL_ID, True),
        ("gpt2", True),
        ("trl-lib/ultrafeedback_binarized", True),
        ("/abs/path/model", False),
        ("a/b/c", False),
        ("./model", False),
        ("org/na--me", False),
        ("x" * 97, False),
    ],
)
def test_hub_id_shape(name, expected):
    assert looks_like_hub_id(name) is expected


def test_model_hub_id_offline_is_one_line_with_the_fix():
    with pytest.raises(HubLoadError) as info:
        load_pretrained_causal_lm(MODEL_ID)
    message = str(info.value)
    assert "\n" not in message and MODEL_ID in message
    assert "set HF_HUB_OFFLINE=0" in message and "local folder" in message


def test_model_hub_id_unreachable_without_offline_mode(monkeypatch):
    """HF_HUB_OFFLINE unset but no network: the message says the Hub could not be reached (the library's own
    offline flag, read at import, keeps the call itself fast here)."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    with pytest.raises(HubLoadError, match="the Hub could not be reached: check the network"):
        load_pretrained_causal_lm(MODEL_ID)


def test_dataset_hub_id_offline_is_one_line_with_the_fix():
    with pytest.raises(HubLoadError) as info:
        load_preference_data(DATASET_ID, split="train", config_name="harmless-base")
    message = str(info.value)
    assert "\n" not in message and DATASET_ID in message and "set HF_HUB_OFFLINE=0" in message


def test_trainer_with_hub_model_id_fails_in_one_line(tmp_path):
    from tidpo import TIDPOConfig, TIDPOTrainer

    with pytest.raises(HubLoadError, match="set HF_HUB_OFFLINE=0"):
        TIDPOTrainer(model=MODEL_ID, args=TIDPOConfig(output_dir=str(tmp_path), use_cpu=True, report_to="none"))


def test_cli_model_hub_id_offline(capsys, tmp_path, tiny_assets):
    message = run_error(capsys, train(MODEL_ID, tiny_assets.train_file, tmp_path))
    assert MODEL_ID in message and "HF_HUB_OFFLINE=0" in message


def test_cli_model_name_or_path_hub_id_offline(capsys, tmp_path, tiny_assets):
    argv = ["train", "--model_name_or_path", MODEL_ID, "--dataset_name", str(tiny_assets.train_file),
            "--output_dir", str(tmp_path / "o")]  # fmt: skip
    assert "HF_HUB_OFFLINE=0" in run_error(capsys, argv)


def test_cli_dataset_hub_id_offline(capsys, tmp_path, tiny_assets):
    argv = train(tiny_assets.base, DATASET_ID, tmp_path, "--dataset_config", "harmless-base")
    message = run_error(capsys, argv)
    assert DATASET_ID in message and "HF_HUB_OFFLINE=0" in message


def test_cli_typo_in_a_data_file_name_is_not_sent_to_the_hub(capsys, tmp_path, tiny_assets):
    message = run_error(capsys, train(tiny_assets.base, "data/trian.jsonl", tmp_path))
    assert "'data/trian.jsonl' is neither a file/folder" in message and "HF_HUB_OFFLINE" not in message


def test_cli_dataset_config_on_a_local_file(capsys, tmp_path, tiny_assets):
    argv = train(tiny_assets.base, tiny_assets.train_file, tmp_path, "--dataset_config", "x")
    assert "--dataset_config 'x' is for a Hub dataset" in run_error(capsys, argv)


def test_cli_bad_dtype(capsys, tmp_path, tiny_assets):
    message = run_error(capsys, train(tiny_assets.base, tiny_assets.train_file, tmp_path, "--dtype", "int8"))
    assert "--dtype" in message and "bf16" in message


def test_eval_strategy_without_eval_dataset_on_a_single_file(capsys, tmp_path, tiny_assets):
    argv = train(tiny_assets.base, tiny_assets.train_file, tmp_path, "--eval_strategy", "steps")
    assert "one file with no 'test' split; pass --eval_dataset" in run_error(capsys, argv)


def test_model_init_kwargs_merge():
    assert model_init_kwargs({"dtype": "bf16", "revision": "main"}, attn_implementation="eager") == {
        "dtype": "bfloat16", "revision": "main", "attn_implementation": "eager"
    }  # fmt: skip
    assert model_init_kwargs(None, dtype="fp16", trust_remote_code=True) == {
        "dtype": "float16", "trust_remote_code": True
    }  # fmt: skip
    assert model_init_kwargs(None) == {}  # trust_remote_code off: never passed
    with pytest.raises(ValueError, match="dtype 'int8' is not one of"):
        model_init_kwargs({"dtype": "int8"})


def test_trainer_loads_policy_and_reference_with_model_init_kwargs(tmp_path, tiny_assets):
    from tidpo import TIDPOConfig, TIDPOTrainer

    config = TIDPOConfig(
        output_dir=str(tmp_path), use_cpu=True, report_to="none", max_length=32, baseline="dpo",
        model_init_kwargs=json.dumps({"dtype": "bf16", "attn_implementation": "eager"}),
    )  # fmt: skip
    trainer = TIDPOTrainer(
        model=str(tiny_assets.base), ref_model=str(tiny_assets.base), args=config,
        train_dataset=str(tiny_assets.train_file),
    )  # fmt: skip
    for model in (trainer.model, trainer.ref_model):
        assert next(model.parameters()).dtype == torch.bfloat16
        assert model.config._attn_implementation == "eager"


def test_cli_dtype_and_attention_reach_the_model(tmp_path, tiny_assets, monkeypatch):
    from tidpo.cli import train as train_cli

    seen = {}

    def spy(run):
        trainer, *rest = build(run)
        seen["dtype"] = next(trainer.model.parameters()).dtype
        seen["attn"] = trainer.model.config._attn_implementation
        seen["ref_dtype"] = next(trainer.ref_model.parameters()).dtype
        raise SystemExit(0)

    build = train_cli.build_trainer
    monkeypatch.setattr(train_cli, "build_trainer", spy)
    argv = train(tiny_assets.base, tiny_assets.train_file, tmp_path, "--dtype", "bf16", "--attn_implementation",
                 "eager", "--use_cpu", "--max_length", "32")  # fmt: skip
    with pytest.raises(SystemExit):
        tidpo(argv)
    assert seen == {"dtype": torch.bfloat16, "attn": "eager", "ref_dtype": torch.bfloat16}
