"""``tidpo train`` argument parsing: TIDPOConfig flags, LoRA flags, the YAML file and its overrides, bad input."""

from __future__ import annotations

from pathlib import Path

import pytest

import tidpo as tidpo_package
from tidpo.cli.common import CLIError
from tidpo.cli.main import main as tidpo
from tidpo.cli.train import parse_train_args
from tidpo.importance import ATTRIBUTION_TARGETS, ESTIMATORS

REQUIRED = ["--model", "m", "--dataset", "d.jsonl", "--output_dir", "out"]


def test_config_flag_reaches_the_config():
    run = parse_train_args([*REQUIRED, "--beta", "0.3", "--importance", "prior", "--learning_rate", "5e-6"])
    assert (run.config.beta, run.config.importance, run.config.learning_rate) == (0.3, "prior", 5e-6)
    assert run.config.kl_mode == "tdpo2"  # the paper preset fills what was not given
    assert run.config.save_strategy == "no"  # the command line's default


@pytest.mark.parametrize("importance", ["columns", "columns_raw"])
def test_weight_column_estimators_are_accepted(importance):
    run = parse_train_args([*REQUIRED, "--importance", importance])
    assert (run.config.importance, run.config.needs_weight_columns, run.config.needs_attribution) == (
        importance,
        True,
        False,
    )


def test_lora_flags_build_a_lora_config():
    run = parse_train_args([*REQUIRED, "--use_lora", "--lora_r", "8", "--lora_alpha", "16", "--lora_dropout", "0"])
    peft = run.lora.to_peft()
    assert (peft.r, peft.lora_alpha, peft.lora_dropout, peft.target_modules) == (8, 16, 0.0, "all-linear")
    named = parse_train_args([*REQUIRED, "--use_lora", "--lora_target_modules", "q_proj", "v_proj"])
    assert set(named.lora.to_peft().target_modules) == {"q_proj", "v_proj"}
    assert parse_train_args(REQUIRED).lora.to_peft() is None


def test_lora_flag_without_use_lora_is_an_error():
    with pytest.raises(CLIError, match="--lora_r .*--use_lora"):
        parse_train_args([*REQUIRED, "--lora_r", "8"])


def test_yaml_file_is_read_and_flags_override_it(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text("beta: 0.2\nlearning_rate: 5e-4\nuse_lora: true\nlora_r: 4\neval_strategy: 'no'\nmodel: m\n")
    run = parse_train_args(["--config", str(config), "--dataset", "d.jsonl", "--output_dir", "o", "--beta", "0.5"])
    assert run.config.beta == 0.5  # the flag wins
    assert run.config.learning_rate == 5e-4  # PyYAML reads 5e-4 as text; converted like the flag would be
    assert (run.lora.use_lora, run.lora.lora_r, run.script.model) == (True, 4, "m")


def test_unknown_yaml_key_names_key_and_file(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text("learnin_rate: 0.1\n")
    with pytest.raises(CLIError, match=r"'learnin_rate' in .*run\.yaml; did you mean 'learning_rate'"):
        parse_train_args([*REQUIRED, "--config", str(config)])


def test_bad_yaml_value_names_key_and_file(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text("eval_strategy: no\n")  # YAML reads an unquoted `no` as false
    with pytest.raises(CLIError, match=r"run\.yaml: key 'eval_strategy'.*quote it"):
        parse_train_args([*REQUIRED, "--config", str(config)])


def test_missing_yaml_file(tmp_path):
    with pytest.raises(CLIError, match="--config .*nope.yaml: no such file"):
        parse_train_args([*REQUIRED, "--config", str(tmp_path / "nope.yaml")])


def test_unknown_flag_exits_2_with_one_line(capsys):
    assert tidpo(["train", *REQUIRED, "--learnin_rate", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert err.startswith("tidpo train: error: unrecognized argument '--learnin_rate'")
    assert "did you mean '--learning_rate'" in err


def test_bad_config_value_exits_2(capsys):
    assert tidpo(["train", *REQUIRED, "--beta", "-1"]) == 2
    assert "beta must be > 0, got -1.0" in capsys.readouterr().err


def test_bad_value_type_names_the_flag(capsys):
    assert tidpo(["train", *REQUIRED, "--max_steps", "many"]) == 2
    assert "--max_steps" in capsys.readouterr().err


@pytest.mark.parametrize(("missing", "flag"), [(0, "--model"), (2, "--dataset"), (4, "--output_dir")])
def test_required_options(missing, flag):
    argv = REQUIRED[:missing] + REQUIRED[missing + 2 :]
    with pytest.raises(CLIError, match=f"{flag} is required"):
        parse_train_args(argv)


def test_eval_before_needs_eval_dataset():
    with pytest.raises(CLIError, match="--eval_before needs --eval_dataset"):
        parse_train_args([*REQUIRED, "--eval_before"])


def test_help_runs(capsys):
    assert tidpo(["--help"]) == 0
    assert "train" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:
        tidpo(["train", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "--lora_target_modules" in out and "--importance_mix" in out and "--config" in out


SHIPPED_YAML = sorted(Path(tidpo_package.__file__).parent.glob("resources/*.yaml")) + sorted(
    path
    for path in (Path(__file__).parents[2] / "examples").glob("*.yaml")
    if not path.name.startswith("compare-")  # tidpo compare study files (tests/compare/test_spec.py)
)


@pytest.mark.parametrize("path", SHIPPED_YAML, ids=lambda p: p.name)
def test_shipped_yaml_files_parse(path):
    run = parse_train_args(["--config", str(path), *REQUIRED, "--use_cpu"])  # a bf16 file needs a GPU or use_cpu
    assert run.config.output_dir == "out"


def test_trls_flag_spellings_are_aliases_on_the_command_line_and_in_yaml(tmp_path):
    trl = ["--model_name_or_path", "m", "--dataset_name", "d.jsonl", "--dataset_train_split", "dev", "--use_peft",
           "--output_dir", "out"]  # fmt: skip
    run = parse_train_args(trl)
    assert (run.script.model, run.script.dataset, run.script.dataset_split, run.lora.use_lora) == (
        "m", "d.jsonl", "dev", True,
    )  # fmt: skip
    config = tmp_path / "run.yaml"
    config.write_text("model_name_or_path: m2\nuse_peft: true\n")
    run = parse_train_args(["--config", str(config), "--dataset", "d.jsonl", "--output_dir", "out"])
    assert (run.script.model, run.lora.use_lora) == ("m2", True)


def _help_of(flag: str) -> str:
    """The help entry of one `tidpo train` flag, its lines joined (argparse wraps them)."""
    from tidpo.cli.train import make_parser

    text = make_parser().format_help()
    start = text.index(f"\n  {flag} ")
    end = text.index("\n  --", start + 1)
    return " ".join(text[start:end].split())


def test_help_lists_choices_and_preset_resolved_defaults():
    importance = _help_of("--importance")
    assert importance.startswith("--importance {" + ",".join([*ESTIMATORS, "custom"]) + "}")  # the table's order
    assert list(ESTIMATORS)[:7] == ["hybrid", "gradient", "prior", "uniform", "random", "columns", "columns_raw"]
    assert "--baseline dpo/tdpo1/tdpo2 uniform" in importance
    # the values each preset resolves to, written out by hand from docs/method.md §5
    by_preset = "(default, by --preset: confidence (the default) 0.7; paper 0.7; official 0.2)"
    assert by_preset in _help_of("--importance_mix")
    assert "confidence (the default) 4.0; paper 4.0; official 8.0)" in _help_of("--prior_sigma_div")
    triplet = "confidence (the default) 0.0; paper 0.1; official 0.001; --baseline dpo/tdpo1/tdpo2 0.0"
    assert triplet in _help_of("--triplet_weight")
    assert "confidence (the default) response; paper response; official sequence" in _help_of("--weight_span")
    assert "confidence (the default) confidence; paper hybrid; official hybrid" in _help_of("--importance")
    assert _help_of("--kl_mode").startswith("--kl_mode {tdpo2,tdpo1,none}")
    for flag in ("--beta", "--importance_mix", "--triplet_margin"):
        assert "(default: None)" not in _help_of(flag), flag
    assert _help_of("--attribution_target").startswith("--attribution_target {" + ",".join(ATTRIBUTION_TARGETS) + "}")
    assert ATTRIBUTION_TARGETS[:2] == ("max_logit", "response_logp")


@pytest.mark.parametrize(
    "flags",
    [["--loss_type", "sigmoid"], ["--label_smoothing", "0"], ["--use_weighting", "false"], ["--loss_weights", "1"],
     ["--truncation_mode", "keep_start"], ["--sync_ref_model", "false"], ["--f_divergence_type", "reverse_kl"]],
)  # fmt: skip
def test_trl_options_at_tidpos_value_are_accepted(flags):
    run = parse_train_args([*REQUIRED, *flags])
    assert run.config.beta == 0.1 and run.config.importance == "confidence"  # the default preset's: nothing changed


def test_truncation_mode_keep_end_reaches_the_config_and_its_clash_is_one_line(capsys):
    assert parse_train_args([*REQUIRED, "--truncation_mode", "keep_end"]).config.truncation_mode == "keep_end"
    flags = ["--truncation_mode", "keep_end", "--share_prompt"]
    with pytest.raises(CLIError, match="truncation_mode='keep_end' cuts each row's prompt") as err:
        parse_train_args([*REQUIRED, *flags])
    assert "\n" not in str(err.value)
    assert tidpo(["train", *REQUIRED, *flags]) == 2
    assert tidpo(["train", *REQUIRED, "--truncation_mode", "middle"]) == 2
    assert "invalid choice: 'middle'" in capsys.readouterr().err


def test_speed_only_trl_option_is_ignored_with_a_word(capsys):
    parse_train_args([*REQUIRED, "--precompute_ref_batch_size", "8"])
    assert "--precompute_ref_batch_size is ignored" in capsys.readouterr().err


def test_padding_and_offloading_flags_reach_the_config():
    config = parse_train_args([*REQUIRED, "--pad_to_multiple_of", "8", "--activation_offloading"]).config
    assert config.pad_to_multiple_of == 8 and config.activation_offloading is True


def test_resume_flag_is_resume_from_the_last_checkpoint():
    assert parse_train_args([*REQUIRED, "--resume"]).config.resume_from_checkpoint == "true"
    assert parse_train_args(REQUIRED).config.resume_from_checkpoint is None
    with pytest.raises(CLIError, match="say different things"):
        parse_train_args([*REQUIRED, "--resume", "--resume_from_checkpoint", "out/checkpoint-4"])
