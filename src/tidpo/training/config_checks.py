"""The checks of :class:`tidpo.training.config.TIDPOConfig`, run once when it is built: the method fields resolved
from the baseline, the KL mode and the preset (a value set explicitly wins; one that contradicts the baseline or the
KL mode is an error), then every number's range and the combinations that cannot run, each refused in one line
naming the option, the value and the rule."""

from __future__ import annotations

import math

from tidpo.losses.kl_modes import kl_mode_spec
from tidpo.training.loss_options import check_loss_fields, default_kl_mode, normalize_loss_fields
from tidpo.training.presets import BASELINES, PRESETS, check_choice

FINITE = (
    "beta",
    "kl_weight",
    "triplet_weight",
    "triplet_margin",
    "importance_mix",
    "prior_sigma_div",
    "anchor_temperature",
    "anchor_top_p",
    "learning_rate",
)


def resolve_method_fields(c) -> None:
    """Fill the method fields of config ``c`` from its baseline, KL mode and preset, then check every range."""
    for name in (
        "preset",
        "baseline",
        "weight_norm",
        "attribution",
        "attribution_target",
        "anchor_backward",
        "anchor_decode",
    ):
        check_choice(name, getattr(c, name))
    normalize_loss_fields(c)
    _apply_baseline(c)
    default_kl_mode(c)  # before the preset: a loss that cannot take the TDPO KL term makes the preset's 'none'
    if c.kl_mode is not None:
        check_choice("kl_mode", c.kl_mode)
        implied = kl_mode_spec(c.kl_mode).fixed_weight
        if implied is not None and c.kl_weight not in (None, implied):
            raise ValueError(f"kl_mode={c.kl_mode!r} fixes kl_weight={implied}, got kl_weight={c.kl_weight}")
        if implied is not None:
            c.kl_weight = implied
    for name, value in PRESETS[c.preset].items():
        if getattr(c, name) is None:
            setattr(c, name, value)
    for name in ("kl_mode", "importance", "weight_span"):
        check_choice(name, getattr(c, name))
    check_ranges(c)


def _apply_baseline(c) -> None:
    for name, value in BASELINES.get(c.baseline, {}).items():
        current = getattr(c, name)
        if current is not None and current != value:
            raise ValueError(
                f"baseline={c.baseline!r} sets {name}={value!r}, but {name}={current!r} was given; drop one of them"
            )
        setattr(c, name, value)


def check_ranges(c) -> None:
    """Every number finite and in its range, and no combination of options that cannot run."""
    for name in FINITE:
        value = getattr(c, name)
        if not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(f"{name} must be a finite number, got {value!r}")
    check_choice("on_nonfinite", c.on_nonfinite)
    if c.fp16 and not _has_accelerator(c.use_cpu):
        raise ValueError("fp16 needs a GPU (or another accelerator); on a CPU drop --fp16 (bf16 runs on a CPU)")
    for name, ok, rule in _range_rules(c):
        if not ok:
            raise ValueError(f"{name} must be {rule}, got {getattr(c, name)!r}")
    check_loss_fields(c)
    _check_combinations(c)


def _range_rules(c) -> list[tuple[str, bool, str]]:
    return [
        ("max_nonfinite_skips", c.max_nonfinite_skips >= 0, ">= 0"),
        ("beta", c.beta > 0, "> 0"),
        ("kl_weight", c.kl_weight >= 0, ">= 0"),
        ("triplet_weight", c.triplet_weight >= 0, ">= 0"),
        ("triplet_margin", c.triplet_margin >= 0, ">= 0"),
        ("importance_mix", 0 <= c.importance_mix <= 1, "in [0, 1]"),
        ("prior_sigma_div", c.prior_sigma_div > 0, "> 0"),
        ("anchor_max_new_tokens", c.anchor_max_new_tokens >= 1, ">= 1"),
        ("anchor_temperature", c.anchor_temperature > 0, "> 0"),
        ("anchor_top_p", 0 < c.anchor_top_p <= 1, "in (0, 1]"),
        ("max_length", c.max_length is None or c.max_length >= 2, ">= 2 or None"),
        ("logits_chunk_size", c.logits_chunk_size >= 1, ">= 1"),
        ("learning_rate", c.learning_rate >= 0, ">= 0"),
        ("per_device_train_batch_size", c.per_device_train_batch_size >= 1, ">= 1"),
        ("per_device_eval_batch_size", c.per_device_eval_batch_size >= 1, ">= 1"),
        ("gradient_accumulation_steps", c.gradient_accumulation_steps >= 1, ">= 1"),
        ("seed", 0 <= c.seed < 2**32, "in [0, 2**32 - 1] (numpy's seeds)"),
    ]


def _check_combinations(c) -> None:
    if c.padding_free and c.share_prompt:
        raise ValueError(
            "padding_free packs whole rows, while share_prompt=True runs each prompt once and continues it row by "
            "row; drop one of them"
        )
    if c.precompute_ref_log_probs and (c.kl_weight > 0 or c.triplet_weight > 0):
        raise ValueError(
            "precompute_ref_log_probs needs a step that uses the reference only for the dataset's own tokens: "
            f"kl_mode='none' and triplet_weight=0 (got kl_mode={c.kl_mode!r}, kl_weight={c.kl_weight}, "
            f"triplet_weight={c.triplet_weight}); the KL needs its full distribution and anchors are new "
            "every step"
        )


def _has_accelerator(use_cpu: bool) -> bool:
    """Whether training will run on something other than the CPU."""
    import torch

    if use_cpu:
        return False
    backends = (torch.cuda, getattr(torch, "xpu", None), getattr(torch.backends, "mps", None))
    return any(b is not None and b.is_available() for b in backends)
