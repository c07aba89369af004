"""``tidpo train``, the command: parse the options (and the ``--config`` file), check them, build the trainer,
train, and report where the outputs are.

The options and ``--help`` live in :mod:`tidpo.cli.train_options`, the YAML file in :mod:`tidpo.cli.config_file`,
the pre-flight checks in :mod:`tidpo.cli.train_checks` and the model checks in :mod:`tidpo.cli.model_checks`; their
public names are importable from here too (the ``import X as X`` lines).
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import fields
from pathlib import Path

from tidpo.cli.common import CLIError, load_dataset_arg
from tidpo.cli.config_file import yaml_defaults
from tidpo.cli.launch import relaunch, split_launch_flag
from tidpo.cli.model_checks import check_causal_lm as check_causal_lm
from tidpo.cli.model_checks import load_policy
from tidpo.cli.options import did_you_mean
from tidpo.cli.train_checks import REPORTERS as REPORTERS
from tidpo.cli.train_checks import TRAINED_FILES as TRAINED_FILES
from tidpo.cli.train_checks import check_output_dir, check_schedules, check_script, check_services, check_trl_options
from tidpo.cli.train_options import CLI_DEFAULTS as CLI_DEFAULTS
from tidpo.cli.train_options import EPILOG as EPILOG
from tidpo.cli.train_options import USAGE as USAGE
from tidpo.cli.train_options import LoraArguments, ScriptArguments, TrainRun, TRLArguments, make_parser
from tidpo.cli.train_report import METRICS_FILE, print_report, print_stopped, write_outputs
from tidpo.cli.train_report import signal_name as signal_name
from tidpo.training.config import TIDPOConfig


def main(argv: list[str] | None = None) -> int:
    """``tidpo train``: parse and check every flag, then train here or re-run under ``--accelerate_config``."""
    argv = sys.argv[1:] if argv is None else list(argv)
    profile, argv = split_launch_flag(argv)
    run = parse_train_args(argv)  # every flag is checked here, before any process is launched
    if profile is not None:
        return relaunch(profile, argv)
    return train(run, argv)


def parse_train_args(argv: list[str]) -> TrainRun:
    """Parse ``tidpo train`` arguments (and the ``--config`` file they name) into a :class:`TrainRun`.

    Raises:
        CLIError: an unknown flag or YAML key, a bad value, a missing required option, or an invalid config.
    """
    parser = make_parser()
    values = _parse_values(parser, argv)
    script = ScriptArguments(**{f.name: values[f.name] for f in fields(ScriptArguments) if f.init})
    lora = LoraArguments(**{f.name: values[f.name] for f in fields(LoraArguments)})
    check_script(script, lora, values)
    check_trl_options({f.name: values[f.name] for f in fields(TRLArguments)})
    config = _make_config(values, script)
    check_services(config)
    check_schedules(parser, values, config)
    _default_eval_dataset(script, config)
    return TrainRun(script, lora, config)


def _parse_values(parser: argparse.ArgumentParser, argv: list[str]) -> dict:
    """Every option's value: the command line over the ``--config`` file over the parser's defaults."""
    pre = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    pre.add_argument("--config")
    known, _ = pre.parse_known_args(argv)
    if known.config:
        parser.set_defaults(**yaml_defaults(parser, known.config))
    namespace, extras = parser.parse_known_args(argv)
    if extras:
        flag = next((e for e in extras if e.startswith("--")), extras[0])
        hint = did_you_mean(flag, [o for o in parser._option_string_actions if o.startswith("--")])
        raise CLIError(f"unrecognized argument {flag!r}{hint} (see `tidpo train --help`)")
    return vars(namespace)


def _make_config(values: dict, script: ScriptArguments) -> TIDPOConfig:
    """The ``TIDPOConfig`` of the options (validated by it), with ``--resume`` as ``--resume_from_checkpoint``."""
    config_values = {f.name: values[f.name] for f in fields(TIDPOConfig) if f.init}
    try:
        config = TIDPOConfig(**config_values)
    except ValueError as err:  # TIDPOConfig/TrainingArguments validation; some messages span several lines
        raise CLIError(f"invalid option: {' '.join(str(err).split())}") from err
    if script.resume:
        if config.resume_from_checkpoint not in (None, "", "true", "last"):
            raise CLIError("--resume and --resume_from_checkpoint PATH say different things; give one of them")
        config.resume_from_checkpoint = "true"
    return config


def _default_eval_dataset(script: ScriptArguments, config: TIDPOConfig) -> None:
    """Periodic evaluation without ``--eval_dataset`` evaluates on ``--dataset``'s ``--eval_split``."""
    if config.eval_strategy != "no" and not script.eval_dataset:
        script.eval_dataset = script.dataset  # TRL's default: the test split of the training dataset
        script.eval_dataset_is_split = True
    if script.log_completions and not script.eval_dataset:
        raise CLIError("--log_completions needs held-out prompts: pass --eval_dataset")


def init_kwargs(run: TrainRun) -> dict:
    """``from_pretrained`` keyword arguments: ``model_init_kwargs`` with ``--dtype``, ``--attn_implementation`` and
    ``--trust_remote_code`` on top."""
    from tidpo.hub import model_init_kwargs

    try:
        return model_init_kwargs(
            run.config.model_init_kwargs, run.script.dtype, run.script.attn_implementation, run.config.trust_remote_code
        )
    except ValueError as err:
        raise CLIError(f"invalid option: {err}") from err


def build_trainer(run: TrainRun):
    """Load the data (checked first), the model and the trainer; returns ``(trainer, train_pairs, eval_pairs)``."""
    from tidpo.training.reference import is_peft_model

    train_pairs, held_out = _load_data(run.script, run.config)
    model, tokenizer = load_policy(run.script.model, init_kwargs(run))
    if is_peft_model(model):
        raise CLIError(
            f"--model {run.script.model} is a LoRA adapter folder; training an existing adapter is not supported: "
            f"pass its base model with --use_lora"
        )
    trainer = _make_trainer(run, model, tokenizer, train_pairs, held_out)
    print(f"routes: {trainer.routes}", file=sys.stderr)
    _check_kept(trainer, run.config.max_length)
    return trainer, len(train_pairs), (len(held_out) if held_out is not None else None)


def _load_data(script: ScriptArguments, config: TIDPOConfig):
    """``(training pairs, held-out pairs or None)``, each cut to its ``--max_*_pairs``."""
    train = _load_pairs(script, script.dataset, script.dataset_split, script.max_train_pairs, script.dataset_config)
    if script.eval_dataset_is_split and not _has_splits(script.dataset):
        raise CLIError(
            f"--eval_strategy {config.eval_strategy.value} needs held-out pairs: --dataset {script.dataset} is "
            f"one file with no {script.eval_split!r} split; pass --eval_dataset"
        )
    if not script.eval_dataset:
        return train, None
    config_name = script.dataset_config if script.eval_dataset == script.dataset else None
    return train, _load_pairs(script, script.eval_dataset, script.eval_split, script.max_eval_pairs, config_name)


def _has_splits(name: str) -> bool:
    """Whether a --dataset can hold several splits (a Hub id, a built-in set, a saved DatasetDict), unlike a file."""
    path = Path(name)
    return not path.exists() or (path.is_dir() and not (path / "state.json").is_file())


def _load_pairs(script, name: str, split: str, limit: int | None, config_name: str | None = None):
    dataset = load_dataset_arg(name, split, config_name, script.on_bad_row, script.skipped_rows)
    if limit is not None:
        dataset = dataset.select(range(min(limit, len(dataset))))
    return dataset


def _make_trainer(run: TrainRun, model, tokenizer, train_pairs, held_out):
    """The ``TIDPOTrainer``; a data or route error, or a Hub repository that cannot be created, is one line."""
    from tidpo.data import PreferenceDataError
    from tidpo.training.routes import RouteError
    from tidpo.training.trainer import TIDPOTrainer

    try:
        return TIDPOTrainer(
            model=model,
            args=run.config,
            train_dataset=train_pairs,
            eval_dataset=held_out,
            processing_class=tokenizer,
            peft_config=run.lora.to_peft(),
        )
    except (PreferenceDataError, RouteError) as err:
        raise CLIError(str(err)) from err
    except OSError as err:  # huggingface_hub's HTTP and connection errors: the repository of --push_to_hub
        if not run.config.push_to_hub:
            raise
        first = next((line for line in str(err).splitlines() if line.strip()), type(err).__name__)
        raise CLIError(
            f"--push_to_hub: the Hub repository could not be created ({first}); check the network and "
            "`hf auth login`, or drop --push_to_hub"
        ) from err


def _check_kept(trainer, max_length: int) -> None:
    """Some pairs of every set are left after the trainer dropped those whose prompt fills ``--max_length``."""
    if len(trainer.train_dataset) == 0:
        raise CLIError(f"every training pair was dropped: the prompts fill --max_length {max_length}; raise it")
    held = trainer.eval_dataset
    for name, data in held.items() if isinstance(held, dict) else ([("held-out", held)] if held is not None else []):
        if len(data) == 0:
            raise CLIError(f"every {name} pair was dropped: the prompts fill --max_length {max_length}; raise it")


def train(run: TrainRun, argv: list[str]) -> int:
    """Train, evaluate, save, plot and write the model card; print where everything is."""
    from tidpo.training.nonfinite import NonFiniteError

    start = time.perf_counter()
    resume = check_output_dir(run)
    trainer, train_pairs, eval_pairs = build_trainer(run)
    stop = _add_callbacks(trainer, run, append=resume is not None)
    eval_before = trainer.evaluate() if run.script.eval_before else None
    try:
        result = trainer.train(resume_from_checkpoint=resume)
    except NonFiniteError as err:
        raise CLIError(f"training stopped: {err}") from err
    if stop.received is not None:
        _end_processes(trainer)
        return print_stopped(Path(run.config.output_dir), stop.received, stop.step)
    eval_after = _final_eval(trainer) if trainer.eval_dataset is not None else None
    trainer.save_model()
    main_process = trainer.is_world_process_zero()
    _end_processes(trainer)
    if not main_process:
        return 0
    curves, card = write_outputs(run, trainer, argv, (train_pairs, eval_pairs), eval_before, eval_after)
    print_report(run, result.metrics, eval_after, curves, card, time.perf_counter() - start)
    return 0


def _add_callbacks(trainer, run: TrainRun, append: bool):
    """tidpo's progress bar, the ``--log_completions`` samples, ``metrics.jsonl`` (appended to on a resume) and the
    signal handler; returns the signal handler, which says whether a signal stopped the run."""
    from tidpo.training.callbacks import LogCompletionsCallback, MetricsJsonlCallback, use_tidpo_progress
    from tidpo.training.signals import StopOnSignal

    use_tidpo_progress(trainer)
    if run.script.log_completions:
        trainer.add_callback(LogCompletionsCallback(held_out_rows(trainer), num_prompts=run.script.log_completions))
    trainer.add_callback(MetricsJsonlCallback(Path(run.config.output_dir) / METRICS_FILE, append=append))
    stop = StopOnSignal()
    trainer.add_callback(stop)
    return stop


def held_out_rows(trainer):
    """The held-out pairs (the first of several eval sets)."""
    data = trainer.eval_dataset
    return next(iter(data.values())) if isinstance(data, dict) else data


def _end_processes(trainer) -> None:
    """Wait for every process at the end of its work. The process group is left open: under torchrun each process
    then leaves with ``tidpo.cli.main.leave_process``, because gloo's teardown can hang (seen in CI)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        trainer.accelerator.wait_for_everyone()


def _final_eval(trainer) -> dict:
    """The end-of-training evaluation, reusing one that ``--eval_strategy`` just ran at the last step."""
    for row in reversed(trainer.state.log_history):
        if "eval_loss" in row:
            if row.get("step") == trainer.state.global_step:
                return row
            break
    return trainer.evaluate()
