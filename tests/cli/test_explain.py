"""``tidpo explain``: a round trip on the LoRA adapter trained by ``tidpo train`` (``trained_tiny``), and errors."""

from __future__ import annotations

import json

import pytest

from tidpo.cli.explain import make_parser
from tidpo.cli.main import main as tidpo

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_explain_writes_html_png_json_for_a_trained_adapter(trained_tiny, tmp_path, capsys):
    out = tmp_path / "explain"
    args = ["explain", "--model", str(trained_tiny.lora), "--dataset", str(trained_tiny.assets.eval_file)]
    assert tidpo([*args, "--n", "3", "--output_dir", str(out), "--max_length", "32", "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    for name in ("explain.html", "explain.png", "explain.json"):
        assert (out / name).is_file() and str(out / name) in printed
    assert (out / "explain.png").read_bytes().startswith(PNG_SIGNATURE)
    data = json.loads((out / "explain.json").read_text(encoding="utf-8"))
    assert len(data["pairs"]) == 3 and data["mix"] == 0.7 and data["model"] == str(trained_tiny.lora)
    assert (out / "explain.html").read_text(encoding="utf-8").count('<section class="pair">') == 3


def error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err
    return err


def test_a_missing_dataset_is_one_line_naming_it(tiny_assets, tmp_path, capsys):
    missing = tmp_path / "nope.jsonl"
    assert tidpo(["explain", "--model", str(tiny_assets.base), "--dataset", str(missing)]) == 2
    assert str(missing) in error_line(capsys)


def test_a_missing_model_is_one_line_naming_it(tiny_assets, tmp_path, capsys):
    missing = tmp_path / "no-model"
    assert tidpo(["explain", "--model", str(missing), "--dataset", str(tiny_assets.eval_file)]) == 2
    assert str(missing) in error_line(capsys)


@pytest.mark.parametrize(
    "option, value", [("--n", "0"), ("--importance_mix", "1.5"), ("--prior_sigma_div", "0"), ("--max_length", "1")]
)
def test_bad_numbers_fail_before_loading_anything(option, value, capsys):
    assert tidpo(["explain", "--model", "unused", "--dataset", "unused", option, value]) == 2
    assert f"{option} must be" in error_line(capsys)


def test_defaults_are_the_default_preset():
    from tidpo.cli.explain import DEFAULTS
    from tidpo.training.config import DEFAULT_PRESET, PRESETS

    args = make_parser().parse_args(["--model", "m", "--dataset", "d"])
    keys = ("importance", "importance_mix", "prior_sigma_div", "weight_span")
    assert all(getattr(args, key) is None for key in keys)  # as trained, else:
    assert {key: DEFAULTS[key] for key in keys} == {key: PRESETS[DEFAULT_PRESET][key] for key in keys}


def test_the_estimator_is_taken_as_trained_and_a_flag_overrides_it(trained_tiny, tmp_path, capsys):
    trained = json.loads((trained_tiny.lora / "tidpo_config.json").read_text(encoding="utf-8"))["importance"]
    args = ["explain", "--model", str(trained_tiny.lora), "--dataset", str(trained_tiny.assets.eval_file)]
    args += ["--n", "1", "--max_length", "32", "--device", "cpu"]
    other = "uniform" if trained != "uniform" else "confidence"
    for flags, expected in (([], trained), (["--importance", other], other)):
        out = tmp_path / expected
        assert tidpo([*args, *flags, "--output_dir", str(out)]) == 0
        assert json.loads((out / "explain.json").read_text(encoding="utf-8"))["importance"] == expected
        assert f"importance = {expected}" in (out / "explain.html").read_text(encoding="utf-8")
    assert f"importance {trained}" in capsys.readouterr().err  # said on stderr: taken from the folder
