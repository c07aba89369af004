"""examples/trl_dpo.yaml, a `trl dpo` config, runs with `tidpo train --config` unchanged: only the Hub model and
dataset are swapped for local ones on the command line (the Hub is unreachable here), and the run is cut short."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from datasets import DatasetDict

from tests.training.helpers import sentiment_pairs
from tidpo.cli.main import main as tidpo
from tidpo.cli.train import parse_train_args

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "trl_dpo.yaml"


def test_the_example_parses_into_trl_meanings():
    run = parse_train_args(["--config", str(EXAMPLE), "--use_cpu"])  # bf16 without a GPU needs use_cpu
    raw = yaml.safe_load(EXAMPLE.read_text())
    assert run.script.model == raw["model_name_or_path"] and run.script.dataset == raw["dataset_name"]
    assert (run.script.dtype, run.script.attn_implementation) == ("bfloat16", "sdpa")
    assert run.lora.use_lora and run.lora.lora_target_modules == ["all-linear"]
    assert run.lora.to_peft().target_modules == "all-linear"
    assert run.script.eval_dataset == raw["dataset_name"] and run.script.eval_split == "test"  # TRL's test split
    assert (run.config.beta, run.config.learning_rate, run.config.gradient_accumulation_steps) == (0.1, 5e-6, 8)


def test_the_example_trains_on_local_copies(tmp_path, tiny_assets):
    pairs = sentiment_pairs(12)
    DatasetDict({"train": pairs.select(range(8)), "test": pairs.select(range(8, 12))}).save_to_disk(tmp_path / "data")
    out = tmp_path / "out"
    argv = ["train", "--config", str(EXAMPLE), "--model_name_or_path", str(tiny_assets.base),
            "--dataset_name", str(tmp_path / "data"), "--output_dir", str(out), "--max_steps", "1",
            "--log_completions", "2", "--disable_tqdm", "true", "--use_cpu"]  # fmt: skip
    assert tidpo(argv) == 0
    adapter = json.loads((out / "adapter_config.json").read_text())
    assert adapter["base_model_name_or_path"] == str(tiny_assets.base) and adapter["r"] == 16
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    final_eval = next(row for row in reversed(rows) if "eval_loss" in row)
    assert final_eval["eval_rewards/accuracies"] is not None
    completions = (out / "completions.jsonl").read_text().splitlines()
    assert len(completions) == 2 and json.loads(completions[0])["prompt"] == pairs[8]["prompt"]


def test_the_example_is_a_config_trl_itself_reads():
    """TRL's own parser (what `trl dpo --config` runs) takes the file, with the meanings tidpo gives it."""
    from trl import DPOConfig, ModelConfig, ScriptArguments, TrlParser

    parser = TrlParser((ScriptArguments, DPOConfig, ModelConfig))
    script, config, model = parser.parse_args_and_config(["--config", str(EXAMPLE), "--use_cpu", "true"])
    ours = parse_train_args(["--config", str(EXAMPLE), "--use_cpu"])
    assert (script.dataset_name, model.model_name_or_path) == (ours.script.dataset, ours.script.model)
    assert model.use_peft == ours.lora.use_lora and config.loss_type == ["sigmoid"]
    assert (config.beta, config.learning_rate, config.max_length) == (
        ours.config.beta, ours.config.learning_rate, ours.config.max_length)  # fmt: skip
