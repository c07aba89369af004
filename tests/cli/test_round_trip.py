"""``tidpo train`` then ``tidpo eval`` on a tiny model saved as a local folder (the ``trained_tiny`` fixture)."""

from __future__ import annotations

import json

import pytest
import yaml

from tidpo.cli.main import main as tidpo

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def front_matter(readme) -> dict:
    text = readme.read_text()
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n")[1])


def metrics_rows(folder) -> list[dict]:
    return [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]


def test_lora_run_writes_adapter_metrics_curves_and_card(trained_tiny):
    out = trained_tiny.lora
    assert (out / "adapter_config.json").is_file() and (out / "adapter_model.safetensors").is_file()
    assert (out / "tokenizer_config.json").is_file()
    assert (out / "training_curves.png").read_bytes().startswith(PNG_SIGNATURE)
    meta = front_matter(out / "README.md")
    assert meta["library_name"] == "peft" and meta["tags"] == ["tidpo", "ti-dpo", "dpo"]
    card = (out / "README.md").read_text()
    assert "| β (beta) | 0.1 |" in card and "before training" in card and "tidpo train --model" in card


def test_metrics_jsonl_has_every_step_and_the_baseline_eval(trained_tiny):
    rows = metrics_rows(trained_tiny.lora)
    train_rows = [r for r in rows if "loss" in r]
    assert [r["step"] for r in train_rows] == [1, 2, 3, 4]
    assert all("rewards/accuracies" in r and "epoch" in r for r in train_rows)
    evals = [r for r in rows if "eval_rewards/accuracies" in r]
    assert [r["step"] for r in evals] == [0, 4]  # --eval_before, then the end of training
    assert evals[0]["eval_loss"] == 0.6931471824645996  # π_θ = π_ref before training: log 2


def test_full_run_writes_model_and_card(trained_tiny):
    out = trained_tiny.full
    assert (out / "config.json").is_file() and (out / "model.safetensors").is_file()
    assert not (out / "adapter_config.json").exists()
    assert front_matter(out / "README.md")["library_name"] == "transformers"
    assert (out / "training_curves.png").read_bytes().startswith(PNG_SIGNATURE)
    assert list((out / "runs").glob("*/events.out.tfevents.*"))  # --report_to tensorboard, offline


def test_eval_of_adapter_uses_its_base_as_reference(trained_tiny, capsys):
    out = trained_tiny.lora
    assert tidpo(["eval", "--model", str(out), "--dataset", str(trained_tiny.assets.eval_file)]) == 0
    results = json.loads((out / "eval_results.json").read_text())
    assert results["pairs"] == 4 and 0.0 <= results["rewards/accuracies"] <= 1.0
    assert "adapter's base model" in results["ref"]
    printed = capsys.readouterr().out
    assert "preference accuracy" in printed and "eval_results.json" in printed
    # the numbers are the adapter against its base: the same as with the base given as --ref, and not all 0 (as
    # they were when the reference was a copy of the trained adapter)
    explicit = out / "explicit.json"
    argv = ["eval", "--model", str(out), "--ref", str(trained_tiny.assets.base), "--output", str(explicit)]
    assert tidpo([*argv, "--dataset", str(trained_tiny.assets.eval_file)]) == 0
    against_base = json.loads(explicit.read_text())
    assert abs(results["rewards/chosen"]) > 1e-6 and abs(results["kl/chosen"]) > 1e-9
    for key in ("loss", "rewards/chosen", "rewards/rejected", "rewards/margins", "kl/chosen"):
        assert results[key] == pytest.approx(against_base[key], abs=1e-6), key


def test_eval_of_full_model_with_ref(trained_tiny, tmp_path):
    output = tmp_path / "results.json"
    argv = ["eval", "--model", str(trained_tiny.full), "--ref", str(trained_tiny.assets.base)]
    argv += ["--dataset", str(trained_tiny.assets.eval_file), "--max_pairs", "2", "--output", str(output)]
    assert tidpo(argv) == 0
    results = json.loads(output.read_text())
    assert results["pairs"] == 2
    assert {"rewards/accuracies", "rewards/margins", "logps/chosen", "kl/chosen", "kl/rejected"} <= set(results)


def test_eval_and_explain_default_to_the_trained_settings(trained_tiny, tmp_path, capsys):
    """The run trained with --max_length 32 and the paper preset: eval and explain take its settings from
    tidpo_config.json and say so; a flag overrides."""
    out = trained_tiny.lora
    saved = json.loads((out / "tidpo_config.json").read_text())
    assert (saved["max_length"], saved["beta"], saved["importance_mix"]) == (32, 0.1, 0.7)
    output = tmp_path / "r.json"
    data = str(trained_tiny.assets.eval_file)
    capsys.readouterr()
    assert tidpo(["eval", "--model", str(out), "--dataset", data, "--output", str(output)]) == 0
    assert "as trained" in capsys.readouterr().err and json.loads(output.read_text())["max_length"] == 32
    argv = ["eval", "--model", str(out), "--dataset", data, "--output", str(output), "--max_length", "40"]
    assert tidpo(argv + ["--beta", "0.3"]) == 0
    results = json.loads(output.read_text())
    assert (results["max_length"], results["beta"]) == (40, 0.3)
    argv = ["explain", "--model", str(out), "--dataset", data, "--n", "1", "--output_dir", str(tmp_path / "x")]
    assert tidpo(argv + ["--importance_mix", "0.2"]) == 0
    err = capsys.readouterr().err
    assert "max_length 32" in err and "importance_mix" not in err.split("as trained")[-1]
    explained = json.loads((tmp_path / "x" / "explain.json").read_text())
    assert explained["mix"] == 0.2 and explained["max_length"] == 32
