"""The options of ``tidpo train``: what to train on (:class:`ScriptArguments`), LoRA (:class:`LoraArguments`),
TRL's ``DPOConfig`` options tidpo accepts at one value (:class:`TRLArguments`), every ``TIDPOConfig`` field, and the
parser and ``--help`` page that hold them.
"""

from __future__ import annotations

import argparse
import copy
from dataclasses import dataclass, field, fields
from typing import get_type_hints

from transformers import HfArgumentParser

from tidpo.cli.launch import profiles
from tidpo.cli.options import DATASET, MODEL, ON_BAD_ROW, SPLIT, ErrorsAsCLIError
from tidpo.hub import DTYPES
from tidpo.losses.kl_modes import KL_MODE_TABLE
from tidpo.training.config import BASELINES, CHOICES, PRESETS, TIDPOConfig
from tidpo.training.presets import DEFAULT_PRESET

DESCRIPTION = """\
``tidpo train``: train a causal LM with TI-DPO (or a DPO/TDPO baseline) from the command line.

Every ``TIDPOConfig`` field is a flag (``--beta``, ``--learning_rate``, ...); ``--config run.yaml`` reads the same
names as YAML keys, and flags on the command line override the file. At the end ``--output_dir`` holds the model
(or LoRA adapter) and tokenizer, ``metrics.jsonl``, ``training_curves.png`` and a model card ``README.md``.
"""
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

    model: str | None = MODEL.field(
        help="Model folder, Hugging Face Hub id (e.g. HuggingFaceTB/SmolLM2-135M-Instruct) or built-in "
        "'smollm2-135m-instruct'.",
        aliases=("--model_name_or_path",),  # TRL's spelling
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
    dataset: str | None = DATASET.field(
        help="Training pairs: a .jsonl/.json/.csv/.parquet file, a save_to_disk folder, a Hub dataset id "
        "(e.g. trl-lib/ultrafeedback_binarized) or 'demo'.",
        aliases=("--dataset_name",),  # TRL's spelling
    )
    dataset_config: str | None = field(
        default=None, metadata={"help": "Configuration (subset) of a Hub --dataset (load_dataset's name)."}
    )
    dataset_split: str = SPLIT.field(
        help="Split of --dataset (Hub id, DatasetDict or 'demo').", aliases=("--dataset_train_split",)
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
        metadata={
            "help": "At each evaluation, sample a completion for the first N held-out prompts and append them to "
            "<output_dir>/completions.jsonl (0: off)."
        },
    )
    on_bad_row: str = ON_BAD_ROW.field(
        help="A malformed pair in --dataset or --eval_dataset: 'error' stops with its file, row and field; 'skip' "
        "leaves it out, and the count is reported at the end."
    )
    resume: bool = field(
        default=False,
        metadata={
            "help": "Continue the run in --output_dir from its last complete checkpoint (the same as "
            "--resume_from_checkpoint true)."
        },
    )
    overwrite_output_dir: bool = field(
        default=False,
        metadata={
            "help": "Train into an --output_dir that already holds a trained model or checkpoints, replacing "
            "them (their checkpoint-* folders are removed first). Without it such a folder is refused."
        },
    )
    eval_dataset_is_split: bool = field(default=False, init=False)  # --eval_dataset defaulted to --dataset's split
    skipped_rows: list = field(default_factory=list, init=False)  # reasons of the rows --on_bad_row skip left out


@dataclass
class TRLArguments:
    """TRL's ``DPOConfig`` options that tidpo has no field for, so that a ``trl dpo`` command or YAML file runs:
    each is accepted at the value that means what TI-DPO does and refused otherwise (docs/trl.md)."""

    _argument_group_name = "TRL DPOConfig options (accepted at the value that means TI-DPO; see docs/trl.md)"

    precompute_ref_batch_size: int | None = field(
        default=None, metadata={"help": "Ignored: the reference is scored with per_device_eval_batch_size."}
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
        """The LoRA settings as the model card lists them, or None without ``--use_lora``."""
        if not self.use_lora:
            return None
        return {
            "r": self.lora_r,
            "alpha": self.lora_alpha,
            "dropout": self.lora_dropout,
            "target_modules": " ".join(self.lora_target_modules),
        }


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


class _Parser(ErrorsAsCLIError, HfArgumentParser):
    """``HfArgumentParser`` whose errors are one :class:`~tidpo.cli.common.CLIError` line (exit 2)."""


def make_parser() -> HfArgumentParser:
    """The parser of ``tidpo train``: script, LoRA and TRL options, ``--config``, ``--accelerate_config`` and every
    ``TIDPOConfig`` field, with ``CLI_DEFAULTS`` applied."""
    parser = _Parser(
        (ScriptArguments, LoraArguments, TRLArguments),
        prog="tidpo train",
        usage=USAGE,
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=_Formatter,
        allow_abbrev=False,
    )
    parser.add_argument("--config", metavar="FILE.yaml", help="YAML file of options (keys = flag names).")
    parser.add_argument(
        "--accelerate_config",
        metavar="NAME|FILE",
        help=f"Re-run this command under `accelerate launch` with a shipped profile ({', '.join(profiles())}; "
        "one process per visible GPU) or your own accelerate config file. See docs/distributed.md.",
    )
    _add_config_arguments(parser)
    _bare_bool_flags(parser)
    parser.set_defaults(**CLI_DEFAULTS)
    return parser


def _bare_bool_flags(parser: HfArgumentParser) -> None:
    """Every true/false flag works bare (``--share_prompt`` means true), as ``HfArgumentParser`` already does for a
    bool field with a default; it leaves out ``bool | None`` fields defaulting to None (``auto``)."""
    from transformers.hf_argparser import string_to_bool

    for action in parser._actions:
        if action.type is string_to_bool and action.nargs is None:
            action.nargs, action.const = "?", True


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
            order = [DEFAULT_PRESET, *(p for p in PRESETS if p != DEFAULT_PRESET)]
            parts = [f"{p}{' (the default)' * (p == DEFAULT_PRESET)} {_show(PRESETS[p][name])}" for p in order]
            by_value: dict[str, list[str]] = {}
            for baseline, values in BASELINES.items():
                if name in values:
                    by_value.setdefault(_show(values[name]), []).append(baseline)
            parts += [f"--baseline {'/'.join(names)} {value}" for value, names in by_value.items()]
            if name == "kl_weight":
                fixed = [m for m in KL_MODE_TABLE.values() if m.fixed_weight is not None]
                parts.append(", ".join(f"{m.fixed_weight:g} with kl_mode {m.name}" for m in fixed))
            action.help = f"{action.help} (default, by --preset: {'; '.join(parts)})".replace("%", "%%")
            action.preset_default = True
