"""TRL's ``DPOConfig`` as a :class:`TIDPOConfig`: what a TRL user's configuration means to tidpo.

Every ``transformers.TrainingArguments`` field carries over unchanged. ``DPOConfig``'s own fields are in three
groups (docs/trl.md has the table): carried over to the field of the same name (the loss family among them);
accepted only at the value that means what TI-DPO does (anything else is an error naming the field, since tidpo
would train something else); and speed-only settings tidpo has no use for (a warning when set).
The TI-DPO fields themselves come from the preset (the default, ``confidence``, unless overridden), with
``DPOConfig``'s ``beta``.
"""

from __future__ import annotations

import enum
import logging
import warnings
from dataclasses import MISSING, fields

from transformers import TrainingArguments

from tidpo.training.config import TIDPOConfig

logger = logging.getLogger("tidpo")

CARRIED = (
    "beta",
    "max_length",
    "disable_dropout",
    "dataset_num_proc",
    "padding_free",
    "precompute_ref_log_probs",
    "model_init_kwargs",
    "trust_remote_code",
    # the loss family (tidpo.training.loss_options): each over the token-weighted log-ratios
    "loss_type",
    "loss_weights",
    "label_smoothing",
    "discopop_tau",
    "use_weighting",
    "ld_alpha",
    "f_divergence_type",
    "f_alpha_divergence_coef",
    "sync_ref_model",
    "ref_model_mixup_alpha",
    "ref_model_sync_steps",
    "router_aux_loss_coef",
    "pad_to_multiple_of",
    "activation_offloading",
    "truncation_mode",
)
# field -> (the values that mean what tidpo does, why anything else is refused)
REQUIRED: dict[str, tuple[tuple, str]] = {
    "pad_token": ((None,), "deprecated in TRL: set tokenizer.pad_token and pass the tokenizer as processing_class"),
}
# read by TRL only with a value of a REQUIRED field that tidpo refuses (none since the loss family is carried)
ONLY_WITH: dict[str, str] = {}
# speed or memory only; tidpo's numbers do not depend on them
IGNORED = {
    "precompute_ref_batch_size": "the reference is scored with per_device_eval_batch_size",
}
# TrainingArguments fields tidpo sets for itself
OWN = {"remove_unused_columns": False}


def _default(f):
    if f.default is not MISSING:
        return f.default
    return f.default_factory() if f.default_factory is not MISSING else MISSING


def _plain(value):
    if isinstance(value, enum.Enum):
        return value.value
    return tuple(value) if isinstance(value, list) else value


def is_dpo_config(args) -> bool:
    """Whether ``args`` is TRL's ``DPOConfig`` (or a subclass), without importing TRL."""
    return any(cls.__name__ == "DPOConfig" and cls.__module__.startswith("trl") for cls in type(args).__mro__)


def from_dpo_config(config, **overrides) -> TIDPOConfig:
    """The :class:`TIDPOConfig` of a TRL ``DPOConfig``; ``overrides`` set TI-DPO fields (``preset``, ``baseline``,
    ``importance``, ...) or replace carried ones.

    Raises:
        ValueError: a ``DPOConfig`` field is set to a value tidpo cannot honour (the message names it), or is a
            field this version of tidpo does not know, set away from its default.
    """
    values = _changed_training_arguments(config)
    trainer_fields = {f.name for f in fields(TrainingArguments)}
    for f in fields(type(config)):
        if f.name in trainer_fields or not f.init:
            continue
        value = _plain(getattr(config, f.name))
        if f.name in CARRIED:
            values[f.name] = _as_list(value)
        else:
            _check_uncarried(config, f, value)
    if values.get("ddp_find_unused_parameters") is None:
        values.pop("ddp_find_unused_parameters", None)  # tidpo's own default (False) stands
    values.update(overrides)
    return TIDPOConfig(**values)


def _as_list(value):
    return list(value) if isinstance(value, tuple) else value


def _changed_training_arguments(config) -> dict:
    """The ``TrainingArguments`` fields of ``config`` set away from their defaults (tidpo's own ones left out)."""
    values = {}
    for f in fields(TrainingArguments):
        if f.init and f.name not in OWN:
            value = _plain(getattr(config, f.name))
            if value != _plain(_default(f)):
                values[f.name] = _as_list(value)
    return values


def _check_uncarried(config, f, value) -> None:
    """A ``DPOConfig`` field that is not carried over: refused unless at a value that means what tidpo does,
    warned about when it is a speed-only setting away from its default."""
    if f.name in REQUIRED:
        allowed, why = REQUIRED[f.name]
        if value not in allowed:
            raise ValueError(f"DPOConfig.{f.name}={getattr(config, f.name)!r} cannot be honoured by tidpo: {why}")
    elif f.name in IGNORED:
        if value != _plain(_default(f)):
            # stacklevel 4: the caller of from_dpo_config's caller, as when from_dpo_config warned itself
            warnings.warn(f"DPOConfig.{f.name} is ignored: {IGNORED[f.name]}", UserWarning, stacklevel=4)
    elif f.name not in ONLY_WITH and value != _plain(_default(f)):
        raise ValueError(
            f"DPOConfig.{f.name}={getattr(config, f.name)!r} is a TRL option this version of tidpo does not know; "
            f"leave it at its default ({_default(f)!r})"
        )


def trainer_args(args: TIDPOConfig | None, importance_fn) -> TIDPOConfig:
    """The trainer's ``args``: a :class:`TIDPOConfig` as given, TRL's ``DPOConfig`` converted, or the default; and
    ``importance="custom"`` only together with ``importance_fn``."""
    args = args or TIDPOConfig(output_dir="tidpo-output")
    if is_dpo_config(args):
        args = from_dpo_config(args)
        logger.info("tidpo: TRL's DPOConfig converted to TIDPOConfig (preset %r, beta %s)", args.preset, args.beta)
    if not isinstance(args, TIDPOConfig):
        raise TypeError(f"args must be a TIDPOConfig (or TRL's DPOConfig), got {type(args).__name__}")
    if (args.importance == "custom") != (importance_fn is not None):
        raise ValueError("importance='custom' and importance_fn go together: pass both or neither")
    return args
