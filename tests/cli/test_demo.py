"""``tidpo demo`` end to end on the tiny model (one training step): every promised output is written and the
summary holds the numbers the demo prints."""

from __future__ import annotations

import json
import math

import pytest

from tidpo.cli.main import main as tidpo
from tidpo.tasks.sentiment import HELD_OUT


def _demo(tiny_assets, out, *flags):
    code = tidpo(["demo", "--model", str(tiny_assets.base), "--output_dir", str(out), "--max_steps", "1",
                  "--samples", "1", *flags])  # fmt: skip
    assert code == 0
    return json.loads((out / "demo_summary.json").read_text())


def test_demo_writes_summary_adapter_and_curves(tiny_assets, tmp_path, capsys):
    out = tmp_path / "demo"
    summary = _demo(tiny_assets, out)
    assert summary["preset"] == "confidence"  # demo.yaml's, the default preset
    samples = summary["samples"]
    assert len(samples) == HELD_OUT  # one continuation per held-out opening and model
    for side, key in (("before", "reference_reward"), ("after", "policy_reward")):
        stat = summary[f"reward_{side}"]
        assert stat["low"] <= stat["mean"] <= stat["high"]
        assert math.isclose(stat["mean"], sum(s[key] for s in samples) / len(samples), abs_tol=1e-12)
    gain = summary["reward_gain"]
    diffs = [s["policy_reward"] - s["reference_reward"] for s in samples]
    assert math.isclose(gain["mean"], sum(diffs) / len(diffs), abs_tol=1e-12)
    assert summary["met_gain"] == (gain["mean"] >= 0.15 and gain["low"] > 0)
    assert summary["met_accuracy"] == (summary["heldout_preference_accuracy"] >= 0.65)
    assert 0.0 <= summary["heldout_preference_accuracy"] <= 1.0
    for name in ("adapter_model.safetensors", "adapter_config.json", "training_curves.png", "metrics.jsonl"):
        assert (out / name).is_file(), name
    assert json.loads((out / "eval_results.json").read_text())["beta"] == pytest.approx(0.1)  # the preset's β
    # the confidence estimator reads no gradient attribution, so there is no attribution page, and the demo says so
    assert not (out / "explain").exists()
    printed = capsys.readouterr().out
    assert "no token-importance page" in printed and "explain page" not in printed
    assert "mean reward before" in printed and "gain (paired)" in printed and "95 % CI" in printed
    assert str(out / "training_curves.png") in printed


def test_demo_with_the_official_preset_explains_with_its_settings(tiny_assets, tmp_path, capsys):
    out = tmp_path / "demo"
    assert _demo(tiny_assets, out, "--preset", "official")["preset"] == "official"
    # eval and explain use the settings the demo trained with, not their own defaults
    assert json.loads((out / "eval_results.json").read_text())["beta"] == pytest.approx(0.2)
    explained = json.loads((out / "explain" / "explain.json").read_text())
    assert (explained["mix"], explained["sigma_div"], explained["span"]) == (0.2, 8.0, "sequence")
    assert str(out / "explain" / "explain.html") in capsys.readouterr().out
