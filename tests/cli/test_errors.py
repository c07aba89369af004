"""A user's mistake ends in one line naming the file, folder or option, with exit status 2, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from transformers import BertConfig, BertModel

from tests.cli.conftest import write_jsonl
from tests.tiny import make_model, make_tokenizer
from tidpo.cli.main import main as tidpo


def run_error(capsys, argv: list[str]) -> str:
    """Run a failing command; its error is one line (after any progress bars transformers drew while loading)."""
    capsys.readouterr()  # drop what the test's own setup printed
    assert tidpo(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"tidpo {argv[0]}: error: "), err
    assert not any(line.startswith(("tidpo", "Traceback")) for line in err[:-1]), err
    return err[-1]


def train(model, dataset, tmp_path, *extra) -> list[str]:
    return ["train", "--model", str(model), "--dataset", str(dataset), "--output_dir", str(tmp_path / "o"), *extra]


def test_missing_dataset_file(capsys, tmp_path, tiny_assets):
    assert "nope.jsonl" in run_error(capsys, train(tiny_assets.base, tmp_path / "nope.jsonl", tmp_path))


def test_missing_eval_dataset_file(capsys, tmp_path, tiny_assets):
    argv = train(tiny_assets.base, tiny_assets.train_file, tmp_path, "--eval_dataset", str(tmp_path / "held.jsonl"))
    assert "held.jsonl" in run_error(capsys, argv)


def test_missing_model_folder(capsys, tmp_path, tiny_assets):
    assert "nope" in run_error(capsys, train(tmp_path / "nope", tiny_assets.train_file, tmp_path))


def test_folder_that_is_not_a_causal_lm(capsys, tmp_path, tiny_assets):
    config = BertConfig(vocab_size=32, hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=8)
    BertModel(config).save_pretrained(tmp_path / "bert")
    message = run_error(capsys, train(tmp_path / "bert", tiny_assets.train_file, tmp_path))
    assert "bert is not a causal language model" in message and "BertModel" in message


def test_dataset_without_needed_columns(capsys, tmp_path, tiny_assets):
    data = write_jsonl(tmp_path / "pairs.jsonl", [{"prompt": "hi", "chosen": "good ."}])
    message = run_error(capsys, train(tiny_assets.base, data, tmp_path))
    assert "pairs.jsonl" in message and "'rejected'" in message


def test_bad_option_value(capsys, tmp_path, tiny_assets):
    message = run_error(capsys, train(tiny_assets.base, tiny_assets.train_file, tmp_path, "--importance_mix", "2"))
    assert "importance_mix must be in [0, 1], got 2.0" in message


def test_an_engineering_option_that_cannot_be_served(capsys, tmp_path, tiny_assets):
    flags = ("--share_prompt", "true", "--gradient_checkpointing")
    argv = train(tiny_assets.base, tiny_assets.train_file, tmp_path, *flags)
    message = run_error(capsys, argv)
    assert "share_prompt=True cannot be served: gradient checkpointing" in message and "share_prompt=False" in message


def test_eval_of_a_full_model_needs_ref(capsys, tiny_assets):
    argv = ["eval", "--model", str(tiny_assets.base), "--dataset", str(tiny_assets.eval_file)]
    assert "pass --ref" in run_error(capsys, argv)


@pytest.mark.parametrize("flag", ["--batch_size", "--max_pairs"])
def test_eval_rejects_non_positive_sizes(capsys, tiny_assets, flag):
    argv = ["eval", "--model", str(tiny_assets.base), "--ref", str(tiny_assets.base)]
    assert flag in run_error(capsys, [*argv, "--dataset", str(tiny_assets.eval_file), flag, "0"])


def test_eval_unknown_flag(capsys, tiny_assets):
    argv = ["eval", "--model", str(tiny_assets.base), "--dataset", str(tiny_assets.eval_file), "--bogus"]
    assert "unrecognized arguments: --bogus" in run_error(capsys, argv)


def test_no_traceback_reaches_stderr_of_the_real_command(tmp_path, tiny_assets):
    argv = train(tiny_assets.base, tmp_path / "nope.jsonl", tmp_path, "--bogus_flag", "1")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "tidpo.cli.main", *argv], capture_output=True, text=True, env=env)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().count("\n") == 0
    assert proc.stderr.startswith("tidpo train: error: unrecognized argument '--bogus_flag'")


def test_eval_ref_with_another_vocabulary(capsys, tmp_path, tiny_assets):
    tokenizer = make_tokenizer()
    other = make_model(tokenizer)
    other.resize_token_embeddings(other.config.vocab_size + 8)
    other.save_pretrained(tmp_path / "other")
    tokenizer.save_pretrained(tmp_path / "other")
    argv = ["eval", "--model", str(tiny_assets.base), "--ref", str(tmp_path / "other")]
    message = run_error(capsys, [*argv, "--dataset", str(tiny_assets.eval_file)])
    assert "other has" in message and "the model's tokenizer" in message


def test_eval_output_that_cannot_be_a_file_fails_before_the_work(capsys, tmp_path, tiny_assets):
    argv = ["eval", "--model", str(tiny_assets.base), "--ref", str(tiny_assets.base), "--dataset",
            str(tiny_assets.eval_file)]  # fmt: skip
    assert "is a folder; give a file name" in run_error(capsys, [*argv, "--output", str(tmp_path)])
    under = tiny_assets.eval_file / "results.json"
    assert "is a file; give a folder" in run_error(capsys, [*argv, "--output", str(under)])


def test_eval_reward_that_returns_no_numbers_is_one_line(capsys, tmp_path, tiny_assets, monkeypatch):
    (tmp_path / "bad_reward.py").write_text("def words(prompts, completions, **kwargs):\n    return ['good'] * 3\n")
    (tmp_path / "prompts.txt").write_text("the movie\nthe film\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    argv = ["eval", "--model", str(tiny_assets.base), "--ref", str(tiny_assets.base), "--prompts",
            str(tmp_path / "prompts.txt"), "--reward", "bad_reward:words", "--samples", "2", "--max_new_tokens", "3",
            "--no_sample_cache", "--output", str(tmp_path / "r.json")]  # fmt: skip
    assert "--reward bad_reward:words: reward returned 3 values for 4 completions" in run_error(capsys, argv)
    assert not (tmp_path / "r.json").exists()
