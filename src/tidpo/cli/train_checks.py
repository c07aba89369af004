"""Pre-flight checks of ``tidpo train``: every option combination that would fail late, or silently do nothing, is
refused in one line before any model or dataset is loaded (and before ``--accelerate_config`` launches anything).
"""

from __future__ import annotations

import sys
from dataclasses import MISSING, fields
from pathlib import Path

from tidpo.cli.common import CLIError, check_folder_path, check_writable_folder
from tidpo.cli.train_options import LoraArguments, ScriptArguments, TrainRun
from tidpo.training.config import TIDPOConfig

# files that mean an --output_dir already holds a trained model
TRAINED_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "adapter_model.safetensors",
    "pytorch_model.bin",
    "tidpo_config.json",
)
# --report_to integration -> (the module it imports, what to install)
REPORTERS = {
    "tensorboard": ("tensorboard", "'tidpo[tensorboard]' (or tensorboard)"),
    "wandb": ("wandb", "wandb"),
    "mlflow": ("mlflow", "mlflow"),
    "comet_ml": ("comet_ml", "comet_ml"),
    "clearml": ("clearml", "clearml"),
    "dvclive": ("dvclive", "dvclive"),
    "neptune": ("neptune", "neptune"),
    "trackio": ("trackio", "trackio"),
    "swanlab": ("swanlab", "swanlab"),
    "codecarbon": ("codecarbon", "codecarbon"),
}


def check_script(script: ScriptArguments, lora: LoraArguments, values: dict) -> None:
    """The required options are given, and the script and LoRA options are in range."""
    _check_required(script, values)
    _check_counts(script)
    _check_lora(lora)


def _check_required(script: ScriptArguments, values: dict) -> None:
    """--model, --dataset and --output_dir, which have no default, are given (on the command line or in --config)."""
    for name, purpose in (("model", "the model to train"), ("dataset", "the training pairs")):
        if not getattr(script, name):
            raise CLIError(f"--{name} is required ({purpose}); pass it on the command line or in --config")
    if not values.get("output_dir"):
        raise CLIError("--output_dir is required (where the model, metrics.jsonl, curves and README.md go)")


def _check_counts(script: ScriptArguments) -> None:
    """The pair limits and --log_completions are in range, and --eval_before has pairs to evaluate."""
    for name in ("max_train_pairs", "max_eval_pairs"):
        if getattr(script, name) is not None and getattr(script, name) < 1:
            raise CLIError(f"--{name} must be at least 1, got {getattr(script, name)}")
    if script.log_completions < 0:
        raise CLIError(f"--log_completions must be >= 0, got {script.log_completions}")
    if script.eval_before and not script.eval_dataset:
        raise CLIError("--eval_before needs --eval_dataset (the held-out pairs to evaluate on)")


def _check_lora(lora: LoraArguments) -> None:
    """LoRA options only with ``--use_lora``, and each in its range."""
    if not lora.use_lora:
        changed = [f.name for f in fields(LoraArguments) if f.name != "use_lora" and _differs(lora, f)]
        if changed:
            raise CLIError(f"--{changed[0]} is set but --use_lora is not; add --use_lora (or drop --{changed[0]})")
    lora_rules = [
        ("lora_r", lora.lora_r >= 1, "at least 1"),
        ("lora_alpha", lora.lora_alpha > 0, "> 0"),
        ("lora_dropout", 0 <= lora.lora_dropout < 1, "in [0, 1)"),
    ]
    for name, ok, rule in lora_rules:
        if not ok:
            raise CLIError(f"--{name} must be {rule}, got {getattr(lora, name)}")


def _differs(obj, f) -> bool:
    default = f.default_factory() if f.default_factory is not MISSING else f.default
    return getattr(obj, f.name) != default


def check_trl_options(values: dict) -> None:
    """TRL-only options: refused (one line) unless at the value that means what tidpo does; speed-only ones warn."""
    from tidpo.training.trl_compat import IGNORED, REQUIRED

    for name, value in values.items():
        if value is None:
            continue
        if name in IGNORED:
            print(f"tidpo train: --{name} is ignored: {IGNORED[name]}", file=sys.stderr)
            continue
        allowed, why = REQUIRED[name]
        plain = tuple(value) if isinstance(value, list) else value
        if plain not in allowed:
            shown = " ".join(map(str, value)) if isinstance(value, list) else value
            raise CLIError(f"--{name} {shown} cannot be honoured by tidpo: {why}")


def check_services(config: TIDPOConfig) -> None:
    """Logging integrations that are not installed, and --push_to_hub without the Hub, fail before any loading."""
    import importlib.util

    from tidpo.hub import hub_offline

    for name in config.report_to or []:
        module, package = REPORTERS.get(name, (None, None))
        if module is not None and importlib.util.find_spec(module) is None:
            raise CLIError(f"--report_to {name} needs the {module!r} package: pip install {package} (or drop it)")
    if config.push_to_hub and hub_offline():
        raise CLIError(
            "--push_to_hub needs the Hugging Face Hub, but HF_HUB_OFFLINE=1 is set: set HF_HUB_OFFLINE=0 (with network "
            "access and `hf auth login`), or drop --push_to_hub and upload the output folder later"
        )


def check_schedules(parser, values: dict, config: TIDPOConfig) -> None:
    """--save_steps / --eval_steps given with their strategy off would silently do nothing."""
    for steps, strategy in (("save_steps", "save_strategy"), ("eval_steps", "eval_strategy")):
        chosen = getattr(config, strategy)
        chosen = getattr(chosen, "value", chosen)  # an IntervalStrategy / SaveStrategy enum
        if values.get(steps) not in (None, parser.get_default(steps)) and chosen != "steps":
            given = f"--{steps} {values[steps]:g}"
            raise CLIError(f"{given} does nothing with --{strategy} {chosen}; add --{strategy} steps")
    if config.max_steps <= 0 and config.num_train_epochs <= 0:  # would save the untrained model as if trained
        raise CLIError(
            f"nothing to train: --num_train_epochs {config.num_train_epochs:g} and no --max_steps; give a positive "
            "number of epochs or steps"
        )


def check_output_dir(run: TrainRun) -> str | None:
    """Before anything is loaded: the output folder can be written, and a trained model or checkpoints in it are
    never replaced unless asked (--overwrite_output_dir) or continued (--resume_from_checkpoint). Returns the
    checkpoint to resume from (None for a fresh start).

    Raises:
        CLIError: the folder is a file or under one, cannot be written, already holds a run, or the checkpoint to
            resume from is missing or incomplete.
    """
    from tidpo.training import checkpoints

    out = Path(run.config.output_dir)
    check_folder_path(out, "--output_dir")
    try:
        resume = checkpoints.resolve_resume(run.config.resume_from_checkpoint, out)
    except checkpoints.ResumeError as err:
        raise CLIError(f"--{err}") from err
    if resume is None:
        _clear_previous_run(out, run.script.overwrite_output_dir)
    check_writable_folder(out, "--output_dir")
    return resume


def _clear_previous_run(out: Path, overwrite: bool) -> None:
    """Refuse an ``out`` that holds a run (a trained model, metrics, checkpoints), or with ``overwrite`` remove its
    checkpoints (the rest is replaced as training writes it)."""
    import shutil

    from tidpo.training import checkpoints

    held = [name for name in TRAINED_FILES if (out / name).exists()]
    if (out / "metrics.jsonl").is_file() and (out / "metrics.jsonl").stat().st_size:
        held.append("metrics.jsonl")
    held += [folder.name for _, folder in checkpoints.checkpoints(out)][:3]
    if held and not overwrite:
        raise CLIError(
            f"--output_dir {out} already holds a run ({', '.join(held)}); pass --resume_from_checkpoint true to "
            "continue it, --overwrite_output_dir to replace it, or another --output_dir"
        )
    if held:
        for _, folder in checkpoints.checkpoints(out):
            shutil.rmtree(folder)
        print(f"tidpo train: --overwrite_output_dir: replacing the run in {out}", file=sys.stderr)
