"""``tidpo train``: train a causal LM with TI-DPO (or a DPO/TDPO baseline) from the command line.

Every ``TIDPOConfig`` field is a flag (``--beta``, ``--learning_rate``, ...); ``--config run.yaml`` reads the same
names as YAML keys, and flags on the command line override the file. At the end ``--output_dir`` holds the model
(or LoRA adapter) and tokenizer, ``metrics.jsonl``, ``training_curves.png`` and a model card ``README.md``.
"""

from __future__ import annotations

import argparse
import copy
import difflib
import json
import sys
import time
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import get_type_hints

import yaml
from transformers import HfArgumentParser

from tidpo.cli.common import (
    CLIError,
    adapter_base,
    check_folder_path,
    check_writable_folder,
    is_adapter_folder,
    load_causal_lm,
    load_dataset_arg,
    resolve_model_path,
)
from tidpo.cli.launch import profiles, relaunch, split_launch_flag
from tidpo.hub import DTYPES
from tidpo.training.config import BASELINES, CHOICES, PRESETS, TIDPOConfig

USAGE = "tidpo train --model MODEL --dataset DATA --output_dir DIR [--config FILE.yaml] [options]"
EPILOG = (
    "examples:\n"
    "  tidpo train --model smollm2-135m-instruct --dataset demo --output_dir out --use_lora --max_steps 40\n"
    "  tidpo train --config run.yaml --learning_rate 5e-6   # flags override the YAML file\n"
    "  tidpo train ... --baseline dpo                       # plain DPO in the same trainer"
)
# Defaults of a command-line run that differ from TIDPOConfig's (a library user saves checkpoints explicitly).
CLI_DEFAULTS = {"save_strategy": "no"}


@dataclass
class ScriptArguments:
    """What to train on, and what to do around training."""

    _argument_group_name = "model and data"

    model: str | None = field(
        default=None,
        metadata={
            "help": "Model folder, Hugging Face Hub id (e.g. HuggingFaceTB/SmolLM2-135M-Instruct) or built-in "
            "'smollm2-135m-instruct'.",
            "aliases": ["--model_name_or_path"],  # TRL's spelling
        },
    )
    dtype: str | None = field(
        default=None,
        metadata={
            "help": "dtype the model (and reference) is loaded in. Default: transformers' default.",
            "choices": list(DTYPES),
        },
    )
    attn_implementation: str | None = field(
        default=None,
        metadata={"help": "Attention kernel of the model (and reference): e.g. sdpa, eager, flash_attention_2."},
    )
    dataset: str | None = field(
        default=None,
        metadata={
            "help": "Training pairs: a .jsonl/.json/.csv/.parquet file, a save_to_disk folder, a Hub dataset id "
            "(e.g. trl-lib/ultrafeedback_binarized) or 'demo'.",
            "aliases": ["--dataset_name"],  # TRL's spelling
        },
    )
    dataset_config: str | None = field(
        default=None, metadata={"help": "Configuration (subset) of a Hub --dataset (load_dataset's name)."}
    )
    dataset_split: str = field(
        default="train",
        metadata={"help": "Split of --dataset (Hub id, DatasetDict or 'demo').", "aliases": ["--dataset_train_split"]},
    )
    eval_dataset: str | None = field(
        default=None,
        metadata={
            "help": "Held-out pairs (same forms as --dataset), evaluated after training. Default with "
            "--eval_strategy steps/epoch: the --eval_split of --dataset (as TRL's --dataset_test_split)."
        },
    )
    eval_split: str = field(
        default="test", metadata={"help": "Split of --eval_dataset.", "aliases": ["--dataset_test_split"]}
    )
    max_train_pairs: int | None = field(default=None, metadata={"help": "Use only the first N training pairs."})
    max_eval_pairs: int | None = field(default=None, metadata={"help": "Use only the first N held-out pairs."})
    eval_before: bool = field(
        default=False, metadata={"help": "Evaluate once before training (the baseline), needs --eval_dataset."}
    )
    log_completions: int = field(
        default=0,
        metadata={"help": "At each evaluation, sample a completion for the first N held-out prompts and append them to "
                  "<output_dir>/completions.jsonl (0: off)."},
    )  # fmt: skip
    on_bad_row: str = field(
        default="error",
        metadata={"help": "A malformed pair in --dataset or --eval_dataset: 'error' stops with its file, row and "
                  "field; 'skip' leaves it out, and the count is reported at the end.", "choices": ["error", "skip"]},
    )  # fmt: skip
    resume: bool = field(
        default=False,
        metadata={"help": "Continue the run in --output_dir from its last complete checkpoint (the same as "
                  "--resume_from_checkpoint true)."},
    )  # fmt: skip
    overwrite_output_dir: bool = field(
        default=False,
        metadata={"help": "Train into an --output_dir that already holds a trained model or checkpoints, replacing "
                  "them (their checkpoint-* folders are removed first). Without it such a folder is refused."},
    )  # fmt: skip
    eval_dataset_is_split: bool = field(default=False, init=False)  # --eval_dataset defaulted to --dataset's split
    skipped_rows: list = field(default_factory=list, init=False)  # reasons of the rows --on_bad_row skip left out


@dataclass
class TRLArguments:
    """TRL's ``DPOConfig`` options that tidpo has no field for, so that a ``trl dpo`` command or YAML file runs:
    each is accepted at the value that means what TI-DPO does and refused otherwise (docs/trl.md)."""

    _argument_group_name = "TRL DPOConfig options (accepted at the value that means TI-DPO; see docs/trl.md)"

    loss_type: list[str] | None = field(default=None, metadata={"help": "Only 'sigmoid' (DPO's loss, Eq. 12)."})
    loss_weights: list[float] | None = field(default=None, metadata={"help": "Only 1 (one loss)."})
    label_smoothing: float | None = field(default=None, metadata={"help": "Only 0 (no robust/EXO DPO)."})
    truncation_mode: str | None = field(default=None, metadata={"help": "Only 'keep_start'."})
    f_divergence_type: str | None = field(default=None, metadata={"help": "Only 'reverse_kl'."})
    ld_alpha: float | None = field(default=None, metadata={"help": "Not supported (LD-DPO); leave unset."})
    use_weighting: bool | None = field(default=None, metadata={"help": "Only false (no WPO pair weighting)."})
    sync_ref_model: bool | None = field(default=None, metadata={"help": "Only false (the reference stays frozen)."})
    pad_to_multiple_of: int | None = field(default=None, metadata={"help": "Ignored (speed only), with a warning."})
    precompute_ref_batch_size: int | None = field(
        default=None, metadata={"help": "Ignored: the reference is scored with per_device_eval_batch_size."}
    )
    activation_offloading: bool | None = field(
        default=None, metadata={"help": "Ignored (not implemented), with a warning; see gradient_checkpointing."}
    )


@dataclass
class LoraArguments:
    """LoRA adapters (peft); the reference model is then the policy with its adapters disabled."""

    _argument_group_name = "LoRA"

    use_lora: bool = field(
        default=False,
        metadata={"help": "Train LoRA adapters instead of every weight.", "aliases": ["--use_peft"]},  # TRL's
    )
    lora_r: int = field(default=16, metadata={"help": "LoRA rank r."})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA scaling α (the update is scaled by α / r)."})
    lora_dropout: float = field(default=0.05, metadata={"help": "Dropout on the LoRA input."})
    lora_target_modules: list[str] = field(
        default_factory=lambda: ["all-linear"],
        metadata={"help": "Modules to adapt: 'all-linear' or module names (e.g. q_proj v_proj)."},
    )

    def to_peft(self):
        """The ``peft.LoraConfig`` of these settings, or None without ``--use_lora``."""
        if not self.use_lora:
            return None
        from peft import LoraConfig

        targets = self.lora_target_modules
        return LoraConfig(
            r=self.lora_r,
            lora_alpha=self.lora_alpha,
            lora_dropout=self.lora_dropout,
            target_modules=targets[0] if targets == ["all-linear"] else list(targets),
            task_type="CAUSAL_LM",
        )

    def summary(self) -> dict | None:
        if not self.use_lora:
            return None
        return {"r": self.lora_r, "alpha": self.lora_alpha, "dropout": self.lora_dropout,
                "target_modules": " ".join(self.lora_target_modules)}  # fmt: skip


@dataclass
class TrainRun:
    """The parsed command line: script options, LoRA options and the training config."""

    script: ScriptArguments
    lora: LoraArguments
    config: TIDPOConfig


class _Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Defaults shown in each option's help; the description and examples keep their line breaks."""

    def _get_help_string(self, action):
        if getattr(action, "preset_default", False):  # the help already says what the preset resolves it to
            return action.help
        return super()._get_help_string(action)


class _Parser(HfArgumentParser):
    """argparse's errors become :class:`CLIError` (one line, exit 2) instead of a usage dump and ``SystemExit``."""

    def error(self, message: str):
        raise CLIError(f"{message} (see `tidpo train --help`)")


def make_parser() -> HfArgumentParser:
    parser = _Parser(
        (ScriptArguments, LoraArguments, TRLArguments),
        prog="tidpo train",
        usage=USAGE,
        description=__doc__,
        epilog=EPILOG,
        formatter_class=_Formatter,
        allow_abbrev=False,
    )
    parser.add_argument("--config", metavar="FILE.yaml", help="YAML file of options (keys = flag names).")
    parser.add_argument(
        "--accelerate_config", metavar="NAME|FILE",
        help=f"Re-run this command under `accelerate launch` with a shipped profile ({', '.join(profiles())}; "
        "one process per visible GPU) or your own accelerate config file. See docs/distributed.md.",
    )  # fmt: skip
    _add_config_arguments(parser)
    parser.set_defaults(**CLI_DEFAULTS)
    return parser


def _add_config_arguments(parser: HfArgumentParser) -> None:
    """Every ``TIDPOConfig`` field as a flag, in two help groups: the method's own fields, then the Trainer's.

    Fields are copied before ``HfArgumentParser`` resolves their types (it does so in place), so building a parser
    leaves ``TIDPOConfig``'s own field objects untouched.
    """
    from transformers import TrainingArguments

    method = parser.add_argument_group("TI-DPO method (TIDPOConfig)")
    trainer = parser.add_argument_group("Trainer (transformers.TrainingArguments)")
    hints = get_type_hints(TIDPOConfig)
    trainer_fields = {f.name for f in fields(TrainingArguments)}
    for original in fields(TIDPOConfig):
        if not original.init:
            continue
        f = copy.copy(original)
        f.type = hints[f.name]
        HfArgumentParser._parse_dataclass_field(trainer if f.name in trainer_fields else method, f)
    _describe_method_options(method)


def _show(value) -> str:
    return "off" if value is None else str(value)


def _describe_method_options(group: argparse._ArgumentGroup) -> None:
    """Each method flag's help names its choices (also as the metavar) and, for a field the preset fills, what
    ``--preset`` and ``--baseline`` resolve it to, instead of argparse's ``(default: None)``."""
    for action in group._group_actions:
        name = action.dest
        choices = [c for c in CHOICES.get(name, ()) if c is not None]
        if choices:
            action.metavar = "{" + ",".join(choices) + "}"
        if name in PRESETS["paper"]:
            parts = [f"{preset} {_show(values[name])}" for preset, values in PRESETS.items()]
            by_value: dict[str, list[str]] = {}
            for baseline, values in BASELINES.items():
                if name in values:
                    by_value.setdefault(_show(values[name]), []).append(baseline)
            parts += [f"--baseline {'/'.join(names)} {value}" for value, names in by_value.items()]
            if name == "kl_weight":
                parts.append("1.0 with kl_mode tdpo1, 0 with none")
            action.help = f"{action.help} (default, by --preset: {'; '.join(parts)})".replace("%", "%%")
            action.preset_default = True


def _suggest(name: str, known) -> str:
    close = difflib.get_close_matches(name, list(known), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def _convert_yaml_value(action: argparse.Action, key: str, value, path: str):
    """A YAML value checked and converted as argparse would the same text on the command line."""
    if value is None or isinstance(value, dict) or (isinstance(value, list) and action.nargs not in ("+", "*")):
        return value  # dict-valued options (e.g. lr_scheduler_kwargs) and list-valued report_to pass through
    convert = action.type or str
    hint = " (quote it: YAML reads no/yes/on/off as booleans)" if isinstance(value, bool) else ""
    items = value if isinstance(value, list) else [value]
    try:
        converted = [convert(item if isinstance(item, str) else str(item)) for item in items]
    except (ValueError, TypeError, argparse.ArgumentTypeError) as err:
        raise CLIError(f"{path}: key {key!r}: {value!r} is not a valid value ({err}){hint}") from err
    if action.choices is not None and any(item not in action.choices for item in converted):
        raise CLIError(f"{path}: key {key!r}: {value!r} is not one of {', '.join(map(str, action.choices))}{hint}")
    # a list-valued flag (nargs "+"/"*") given one YAML scalar is a one-item list, as `--flag value` would be
    return converted if isinstance(value, list) or action.nargs in ("+", "*") else converted[0]


class _UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a key given twice in one mapping (PyYAML keeps the last one silently)."""


def _unique_mapping(loader: _UniqueKeyLoader, node, deep: bool = False) -> dict:
    seen = set()
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *anchor`: keys written after it override on purpose
            continue
        key = loader.construct_object(key_node, deep=deep)
        try:
            duplicate = key in seen
        except TypeError:  # an unhashable key: construct_mapping below says so
            break
        if duplicate:
            raise yaml.constructor.ConstructorError(None, None, f"key {key!r} is given twice", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _unique_mapping)


def yaml_defaults(parser: argparse.ArgumentParser, path: str) -> dict:
    """The options of a ``--config`` YAML file as parser defaults (so command-line flags override them).

    Raises:
        CLIError: the file is missing, is not a YAML mapping, has a key that is no flag, or a value of the wrong type.
    """
    file = Path(path)
    if not file.is_file():
        raise CLIError(f"--config {path}: no such file")
    try:
        data = yaml.load(file.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)  # safe: no object tags
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f", line {mark.line + 1}" if mark is not None else ""
        what = getattr(err, "problem", None) or " ".join(str(err).split())
        raise CLIError(f"--config {path} is not valid YAML{where}: {what}") from err
    data = {} if data is None else data
    if not isinstance(data, dict):
        raise CLIError(f"--config {path} must be a mapping of option: value, got a {type(data).__name__}")
    flags = {opt[2:]: a for opt, a in parser._option_string_actions.items() if opt.startswith("--")}
    for reserved in ("help", "config", "accelerate_config"):
        flags.pop(reserved)
    defaults = {}
    for key, value in data.items():
        action = flags.get(str(key))
        if action is None:
            raise CLIError(f"unknown key {key!r} in {path}{_suggest(str(key), flags)} (keys are `tidpo train` flags)")
        if action.nargs == 0:  # --no_<flag>: store_false
            if not isinstance(value, bool):
                raise CLIError(f"{path}: key {key!r} takes true or false, got {value!r}")
            if value:
                defaults[action.dest] = action.const
            continue
        defaults[action.dest] = _convert_yaml_value(action, str(key), value, path)
    return defaults


def parse_train_args(argv: list[str]) -> TrainRun:
    """Parse ``tidpo train`` arguments (and the ``--config`` file they name) into a :class:`TrainRun`.

    Raises:
        CLIError: an unknown flag or YAML key, a bad value, a missing required option, or an invalid config.
    """
    parser = make_parser()
    pre = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    pre.add_argument("--config")
    known, _ = pre.parse_known_args(argv)
    if known.config:
        parser.set_defaults(**yaml_defaults(parser, known.config))
    namespace, extras = parser.parse_known_args(argv)
    if extras:
        flag = next((e for e in extras if e.startswith("--")), extras[0])
        hint = _suggest(flag, [o for o in parser._option_string_actions if o.startswith("--")])
        raise CLIError(f"unrecognized argument {flag!r}{hint} (see `tidpo train --help`)")
    values = vars(namespace)
    script = ScriptArguments(**{f.name: values[f.name] for f in fields(ScriptArguments) if f.init})
    lora = LoraArguments(**{f.name: values[f.name] for f in fields(LoraArguments)})
    _check_script(script, lora, values)
    _check_trl_options({f.name: values[f.name] for f in fields(TRLArguments)})
    config_values = {f.name: values[f.name] for f in fields(TIDPOConfig) if f.init}
    try:
        config = TIDPOConfig(**config_values)
    except ValueError as err:  # TIDPOConfig/TrainingArguments validation; some messages span several lines
        raise CLIError(f"invalid option: {' '.join(str(err).split())}") from err
    if script.resume:
        if config.resume_from_checkpoint not in (None, "", "true", "last"):
            raise CLIError("--resume and --resume_from_checkpoint PATH say different things; give one of them")
        config.resume_from_checkpoint = "true"
    _check_services(config)
    _check_schedules(parser, values, config)
    if config.eval_strategy != "no" and not script.eval_dataset:
        script.eval_dataset = script.dataset  # TRL's default: the test split of the training dataset
        script.eval_dataset_is_split = True
    if script.log_completions and not script.eval_dataset:
        raise CLIError("--log_completions needs held-out prompts: pass --eval_dataset")
    return TrainRun(script, lora, config)


def _check_trl_options(values: dict) -> None:
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


def _check_schedules(parser, values: dict, config: TIDPOConfig) -> None:
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


# files that mean an --output_dir already holds a trained model
TRAINED_FILES = ("model.safetensors", "model.safetensors.index.json", "adapter_model.safetensors",
                 "pytorch_model.bin", "tidpo_config.json")  # fmt: skip


def check_output_dir(run: TrainRun) -> str | None:
    """Before anything is loaded: the output folder can be written, and a trained model or checkpoints in it are
    never replaced unless asked (--overwrite_output_dir) or continued (--resume_from_checkpoint). Returns the
    checkpoint to resume from (None for a fresh start).

    Raises:
        CLIError: the folder is a file or under one, cannot be written, already holds a run, or the checkpoint to
            resume from is missing or incomplete.
    """
    import shutil

    from tidpo.training import checkpoints

    out = Path(run.config.output_dir)
    check_folder_path(out, "--output_dir")
    try:
        resume = checkpoints.resolve_resume(run.config.resume_from_checkpoint, out)
    except checkpoints.ResumeError as err:
        raise CLIError(f"--{err}") from err
    if resume is None:
        held = [name for name in TRAINED_FILES if (out / name).exists()]
        if (out / "metrics.jsonl").is_file() and (out / "metrics.jsonl").stat().st_size:
            held.append("metrics.jsonl")
        held += [folder.name for _, folder in checkpoints.checkpoints(out)][:3]
        if held and not run.script.overwrite_output_dir:
            raise CLIError(
                f"--output_dir {out} already holds a run ({', '.join(held)}); pass --resume_from_checkpoint true to "
                "continue it, --overwrite_output_dir to replace it, or another --output_dir"
            )
        if held:
            for _, folder in checkpoints.checkpoints(out):
                shutil.rmtree(folder)
            print(f"tidpo train: --overwrite_output_dir: replacing the run in {out}", file=sys.stderr)
    check_writable_folder(out, "--output_dir")
    return resume


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


def _check_services(config: TIDPOConfig) -> None:
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


def _check_script(script: ScriptArguments, lora: LoraArguments, values: dict) -> None:
    for name, purpose in (("model", "the model to train"), ("dataset", "the training pairs")):
        if not getattr(script, name):
            raise CLIError(f"--{name} is required ({purpose}); pass it on the command line or in --config")
    if not values.get("output_dir"):
        raise CLIError("--output_dir is required (where the model, metrics.jsonl, curves and README.md go)")
    for name in ("max_train_pairs", "max_eval_pairs"):
        if getattr(script, name) is not None and getattr(script, name) < 1:
            raise CLIError(f"--{name} must be at least 1, got {getattr(script, name)}")
    if script.log_completions < 0:
        raise CLIError(f"--log_completions must be >= 0, got {script.log_completions}")
    if script.eval_before and not script.eval_dataset:
        raise CLIError("--eval_before needs --eval_dataset (the held-out pairs to evaluate on)")
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


def check_causal_lm(name_or_path: str) -> None:
    """Fail before any weight is loaded when the folder's ``config.json`` names no causal-LM architecture
    (``AutoModelForCausalLM`` would otherwise load, say, a ``BertModel`` folder as a randomly headed
    ``BertLMHeadModel``). An adapter folder is checked through its base model.

    Raises:
        CLIError: the folder is missing or holds another kind of model.
    """
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    path = Path(resolve_model_path(name_or_path))
    if is_adapter_folder(str(path)):
        try:
            path = Path(resolve_model_path(adapter_base(str(path))))
        except CLIError:
            return  # load_causal_lm names the missing base
    if not (path / "config.json").is_file():
        return  # a Hub id: from_pretrained checks the class of what it downloads
    config = json.loads((path / "config.json").read_text())
    architectures = config.get("architectures") or []
    if not architectures:  # judged by its model type: an encoder (BERT & co.) would load as a headless "decoder"
        from transformers.models.auto.modeling_auto import MODEL_FOR_MASKED_LM_MAPPING_NAMES

        kind = config.get("model_type")
        encoder = kind in MODEL_FOR_MASKED_LM_MAPPING_NAMES and not config.get("is_decoder")
        if kind not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES or encoder:
            raise CLIError(
                f"{name_or_path} is not a causal language model: its config.json names no architectures and its "
                f"model_type {kind!r} is {'an encoder' if encoder else 'no causal LM type'}; pass a decoder-only model "
                "saved with AutoModelForCausalLM"
            )
    if architectures and not set(architectures) & set(MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.values()):
        raise CLIError(
            f"{name_or_path} is not a causal language model: its config.json names {', '.join(architectures)}; "
            f"pass a decoder-only model saved with AutoModelForCausalLM (e.g. LlamaForCausalLM)"
        )


def load_policy(name_or_path: str, init_kwargs: dict | None = None):
    """``(model, tokenizer)`` of a causal LM folder, built-in name or Hub id, checked for a usable EOS token."""
    check_causal_lm(name_or_path)
    model, tokenizer = load_causal_lm(name_or_path, init_kwargs)
    if tokenizer.eos_token_id is None:
        raise CLIError(
            f"the tokenizer of {name_or_path} has no eos_token; TI-DPO ends every response with it: set "
            f"eos_token in its tokenizer_config.json (for chat models, the token that ends an assistant turn)"
        )
    return model, tokenizer


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


def _has_splits(name: str) -> bool:
    """Whether a --dataset can hold several splits (a Hub id, a built-in set, a saved DatasetDict), unlike a file."""
    path = Path(name)
    return not path.exists() or (path.is_dir() and not (path / "state.json").is_file())


def _load_pairs(script, name: str, split: str, limit: int | None, config_name: str | None = None):
    dataset = load_dataset_arg(name, split, config_name, script.on_bad_row, script.skipped_rows)
    if limit is not None:
        dataset = dataset.select(range(min(limit, len(dataset))))
    return dataset


def build_trainer(run: TrainRun):
    """Load the data (checked first), the model and the trainer; returns ``(trainer, train_pairs, eval_pairs)``."""
    from tidpo.data import PreferenceDataError
    from tidpo.training.reference import is_peft_model
    from tidpo.training.routes import RouteError
    from tidpo.training.trainer import TIDPOTrainer

    script = run.script
    train = _load_pairs(script, script.dataset, script.dataset_split, script.max_train_pairs, script.dataset_config)
    held_out = None
    if script.eval_dataset_is_split and not _has_splits(script.dataset):
        raise CLIError(
            f"--eval_strategy {run.config.eval_strategy.value} needs held-out pairs: --dataset {script.dataset} is "
            f"one file with no {script.eval_split!r} split; pass --eval_dataset"
        )
    if script.eval_dataset:
        config_name = script.dataset_config if script.eval_dataset == script.dataset else None
        held_out = _load_pairs(script, script.eval_dataset, script.eval_split, script.max_eval_pairs, config_name)
    model, tokenizer = load_policy(script.model, init_kwargs(run))
    if is_peft_model(model):
        raise CLIError(
            f"--model {script.model} is a LoRA adapter folder; training an existing adapter is not supported: "
            f"pass its base model with --use_lora"
        )
    try:
        trainer = TIDPOTrainer(
            model=model,
            args=run.config,
            train_dataset=train,
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
    print(f"routes: {trainer.routes}", file=sys.stderr)
    if len(trainer.train_dataset) == 0:
        raise CLIError(
            f"every training pair was dropped: the prompts fill --max_length {run.config.max_length}; raise it"
        )
    held = trainer.eval_dataset
    for name, data in held.items() if isinstance(held, dict) else ([("held-out", held)] if held is not None else []):
        if len(data) == 0:
            raise CLIError(
                f"every {name} pair was dropped: the prompts fill --max_length {run.config.max_length}; raise it"
            )
    return trainer, len(train), (len(held_out) if held_out is not None else None)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    profile, argv = split_launch_flag(argv)
    run = parse_train_args(argv)  # every flag is checked here, before any process is launched
    if profile is not None:
        return relaunch(profile, argv)
    return train(run, argv)


def train(run: TrainRun, argv: list[str]) -> int:
    """Train, evaluate, save, plot and write the model card; print where everything is."""
    from tidpo.model_card import RunSummary, write_model_card
    from tidpo.plotting import has_curves, plot_training_curves
    from tidpo.training.callbacks import LogCompletionsCallback, MetricsJsonlCallback, use_tidpo_progress
    from tidpo.training.outputs import last_train_log
    from tidpo.training.signals import StopOnSignal, exit_status
    from tidpo.training.trainer import NonFiniteError

    start = time.perf_counter()
    resume = check_output_dir(run)
    trainer, train_pairs, eval_pairs = build_trainer(run)
    out = Path(run.config.output_dir)
    metrics_path = out / "metrics.jsonl"
    use_tidpo_progress(trainer)
    if run.script.log_completions:
        trainer.add_callback(LogCompletionsCallback(held_out_rows(trainer), num_prompts=run.script.log_completions))
    trainer.add_callback(MetricsJsonlCallback(metrics_path, append=resume is not None))
    stop = StopOnSignal()
    trainer.add_callback(stop)
    eval_before = trainer.evaluate() if run.script.eval_before else None
    try:
        result = trainer.train(resume_from_checkpoint=resume)
    except NonFiniteError as err:
        raise CLIError(f"training stopped: {err}") from err
    if stop.received is not None:
        _end_processes(trainer)
        name = signal_name(stop.received)
        print(
            f"tidpo train: stopped by {name} after step {stop.step}; checkpoint {out / f'checkpoint-{stop.step}'} "
            f"written; continue with the same command and --resume_from_checkpoint true "
            f"(exit status {exit_status(stop.received)})",
            file=sys.stderr,
        )
        return exit_status(stop.received)
    eval_after = _final_eval(trainer) if trainer.eval_dataset is not None else None
    trainer.save_model()
    main_process = trainer.is_world_process_zero()
    _end_processes(trainer)
    if not main_process:
        return 0
    curves = None
    if has_curves(metrics_path):  # a run too short to log has nothing to draw; the report says so
        curves = plot_training_curves(metrics_path, out / "training_curves.png", title=f"tidpo train: {out.name}")
    summary = RunSummary(
        model=run.script.model,
        dataset=run.script.dataset,
        train_pairs=train_pairs,
        config=run.config,
        eval_dataset=run.script.eval_dataset,
        eval_pairs=eval_pairs,
        lora=run.lora.summary(),
        train_metrics=last_train_log(trainer.state.log_history),
        eval_before=eval_before,
        eval_after=eval_after,
        argv=argv,
    )
    card = write_model_card(out / "README.md", summary)
    _print_report(run, result.metrics, eval_after, metrics_path, curves, card, time.perf_counter() - start)
    return 0


def signal_name(signum: int) -> str:
    import signal

    return signal.Signals(signum).name


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


def _print_report(run: TrainRun, train_metrics, eval_after, metrics_path, curves, card, seconds: float) -> None:
    out = Path(run.config.output_dir)
    what = "LoRA adapter" if run.lora.use_lora else "model"
    lines = [f"\ntidpo train: done in {seconds:.1f} s (train_loss {train_metrics['train_loss']:.4g})"]
    if eval_after:
        acc, margin = eval_after.get("eval_rewards/accuracies"), eval_after.get("eval_rewards/margins")
        lines.append(f"  held-out reward accuracy {acc:.3f}, margin {margin:.4g}")
    rows = [
        (f"{what} + tokenizer", out),
        ("metrics (one JSON line per log)", metrics_path),
        ("training curves", curves or "none: nothing was logged (lower --logging_steps)"),
        ("model card", card),
    ]
    if "tensorboard" in run.config.report_to:
        rows.append(("tensorboard logs", f"{out / 'runs'}  (tensorboard --logdir {out / 'runs'})"))
    if run.script.skipped_rows:
        lines.append(f"  skipped {len(run.script.skipped_rows)} bad row(s) (--on_bad_row skip); the first: "
                     f"{run.script.skipped_rows[0]}")  # fmt: skip
    width = max(len(label) for label, _ in rows)
    lines += [f"  {label:<{width}}  {path}" for label, path in rows]
    print("\n".join(lines))
