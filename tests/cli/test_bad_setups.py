"""Setups that used to be accepted silently or to end in a traceback: each is refused before training with one
line and exit status 2 (and nothing already in --output_dir is touched)."""

from __future__ import annotations

import json
import shutil

import pytest

from tests.cli.conftest import train_args
from tidpo.cli.main import main as tidpo


def _one_line_error(capsys, argv) -> str:
    assert tidpo(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err
    return err.splitlines()[-1]


@pytest.mark.parametrize(
    "extra, match",
    [
        (["--beta", "inf"], "beta must be a finite number"),
        (["--learning_rate", "nan"], "learning_rate must be a finite number"),
        (["--fp16"], "fp16 needs a GPU"),
        (["--save_steps", "2"], "--save_steps 2 does nothing with --save_strategy no; add --save_strategy steps"),
        (["--eval_steps", "3", "--eval_strategy", "epoch"], "--eval_steps 3 does nothing with --eval_strategy epoch"),
        (["--on_nonfinite", "ignore"], "on_nonfinite='ignore' is not one of 'raise', 'skip'"),
        (["--importance_mix", "1.5"], "importance_mix must be in [0, 1]"),
        (["--resume_from_checkpoint", "nowhere/checkpoint-3"], "nowhere/checkpoint-3 does not exist"),
        (["--resume_from_checkpoint", "true"], "has no complete checkpoint to resume from"),
        (["--on_bad_row", "maybe"], "invalid choice: 'maybe'"),
        (["--per_device_train_batch_size", "0"], "per_device_train_batch_size must be >= 1, got 0"),
        (["--gradient_accumulation_steps", "0"], "gradient_accumulation_steps must be >= 1, got 0"),
        (["--learning_rate", "-1"], "learning_rate must be >= 0, got -1.0"),
        (["--seed", "-1"], "seed must be in [0, 2**32 - 1]"),
        (["--use_lora", "--lora_r", "0"], "--lora_r must be at least 1, got 0"),
        (["--use_lora", "--lora_dropout", "1"], "--lora_dropout must be in [0, 1), got 1.0"),
        (["--max_steps", "-1", "--num_train_epochs", "0"], "nothing to train: --num_train_epochs 0 and no --max_steps"),
    ],
)
def test_bad_option_is_one_line(capsys, tiny_assets, tmp_path, extra, match):
    assert match in _one_line_error(capsys, train_args(tiny_assets, tmp_path / "out", *extra))


def test_output_dir_under_a_file(capsys, tiny_assets, tmp_path):
    (tmp_path / "file").write_text("x")
    line = _one_line_error(capsys, train_args(tiny_assets, tmp_path / "file" / "out"))
    assert "is under" in line and "which is a file" in line


def test_unwritable_output_dir(capsys, tiny_assets, tmp_path, monkeypatch):
    import tempfile

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "NamedTemporaryFile", refuse)  # as root, chmod would not stop the write
    assert "cannot be written: Permission denied" in _one_line_error(capsys, train_args(tiny_assets, tmp_path / "o"))


def test_a_trained_output_dir_is_never_silently_replaced(capsys, trained_tiny, tiny_assets, tmp_path):
    out = tmp_path / "used"
    shutil.copytree(trained_tiny.full, out)
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    line = _one_line_error(capsys, train_args(tiny_assets, out))
    assert "already holds a run" in line and "--overwrite_output_dir" in line and "--resume_from_checkpoint" in line
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before  # untouched
    assert tidpo(train_args(tiny_assets, out, "--overwrite_output_dir", "--max_steps", "1")) == 0
    assert "replacing the run" in capsys.readouterr().err
    assert len((out / "metrics.jsonl").read_text().splitlines()) < len(before["metrics.jsonl"].decode().splitlines())


def test_yaml_python_tag_is_refused_not_run(capsys, tiny_assets, tmp_path):
    config = tmp_path / "evil.yaml"
    config.write_text(f"beta: !!python/object/apply:os.system ['touch {tmp_path / 'pwned'}']\n")
    line = _one_line_error(capsys, ["train", "--config", str(config), *train_args(tiny_assets, tmp_path / "o")[1:]])
    assert "is not valid YAML, line 1: could not determine a constructor for the tag" in line
    assert not (tmp_path / "pwned").exists()


def test_yaml_key_given_twice_is_refused(capsys, tiny_assets, tmp_path):
    config = tmp_path / "twice.yaml"
    config.write_text("beta: 0.1\nlearning_rate: 1.0e-4\nbeta: 0.2\n")  # PyYAML alone keeps the last, silently
    line = _one_line_error(capsys, ["train", "--config", str(config), *train_args(tiny_assets, tmp_path / "o")[1:]])
    assert "is not valid YAML, line 3: key 'beta' is given twice" in line


def test_an_encoder_config_without_architectures_is_refused(capsys, tiny_assets, tmp_path):
    folder = tmp_path / "bert"
    shutil.copytree(tiny_assets.base, folder)
    config = json.loads((folder / "config.json").read_text())
    config.pop("architectures", None)
    config["model_type"] = "bert"
    (folder / "config.json").write_text(json.dumps(config))
    argv = train_args(tiny_assets, tmp_path / "o")
    argv[argv.index("--model") + 1] = str(folder)
    assert "model_type 'bert' is an encoder" in _one_line_error(capsys, argv)


def test_truncated_weights_are_one_line(capsys, tiny_assets, tmp_path):
    folder = tmp_path / "cut"
    shutil.copytree(tiny_assets.base, folder)
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    argv = train_args(tiny_assets, tmp_path / "o")
    argv[argv.index("--model") + 1] = str(folder)
    assert "truncated or damaged" in _one_line_error(capsys, argv)


def test_held_out_pairs_all_dropped_by_max_length(capsys, tiny_assets, tmp_path):
    long = tmp_path / "long.jsonl"
    row = {"prompt": "the movie was " * 40, "chosen": " good .", "rejected": " bad ."}
    long.write_text(json.dumps(row) + "\n")
    argv = train_args(tiny_assets, tmp_path / "o")
    argv[argv.index("--eval_dataset") + 1] = str(long)
    assert "every held-out pair was dropped" in _one_line_error(capsys, argv)
