"""The pieces behind ``tidpo train``'s outputs: the metrics file, the curves and the model card."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import yaml

from tidpo.model_card import RunSummary, render_model_card
from tidpo.plotting import has_curves, plot_training_curves
from tidpo.training.callbacks import MetricsJsonlCallback
from tidpo.training.config import TIDPOConfig


def test_metrics_callback_writes_one_line_per_log(tmp_path):
    path = tmp_path / "run" / "metrics.jsonl"
    callback = MetricsJsonlCallback(path)
    state = SimpleNamespace(is_world_process_zero=True, global_step=3, epoch=0.5)
    callback.on_log(None, state, None, logs={"loss": 0.5, "rewards/accuracies": float("nan")})
    assert json.loads(path.read_text()) == {"step": 3, "epoch": 0.5, "loss": 0.5, "rewards/accuracies": None}
    MetricsJsonlCallback(path, append=True).on_log(None, state, None, logs={"loss": 0.4})
    assert len(path.read_text().splitlines()) == 2
    MetricsJsonlCallback(path)  # a new run starts the file again
    assert path.read_text() == ""


def test_curves_skip_absent_panels_and_need_some_metric(tmp_path):
    metrics = tmp_path / "metrics.jsonl"
    metrics.write_text(json.dumps({"step": 1, "loss": 0.7}) + "\n" + json.dumps({"step": 2, "eval_loss": 0.6}) + "\n")
    assert plot_training_curves(metrics, tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"
    metrics.write_text(json.dumps({"step": 1, "train_runtime": 3.0}) + "\n")
    assert not has_curves(metrics)
    with pytest.raises(ValueError, match="no training metrics"):
        plot_training_curves(metrics, tmp_path / "d.png")


def test_model_card_front_matter_for_builtin_model(tmp_path):
    config = TIDPOConfig(output_dir=str(tmp_path / "run"), baseline="dpo")
    summary = RunSummary(model="smollm2-135m-instruct", dataset="demo", train_pairs=8, config=config, argv=["--x"])
    card = render_model_card(summary)
    meta = yaml.safe_load(card.split("---\n")[1])
    assert meta["base_model"] == "HuggingFaceTB/SmolLM2-135M-Instruct" and meta["library_name"] == "transformers"
    assert "| KL mode | `none` |" in card and "tidpo train --x" in card
