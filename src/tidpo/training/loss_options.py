"""TRL's loss options on :class:`tidpo.training.config.TIDPOConfig` (TRL 1.16's names and defaults), their checks,
and the :class:`tidpo.losses.loss_family.LossFamily` they choose (docs/method.md §3b, docs/trl.md).

Each loss composes with the token weights (it reads the weighted log-ratios); with the TDPO KL term only where it
reads the pair margin (``kl`` in its table row) and the f-divergence is the reverse KL; with the triplet always.
When the KL mode comes from the preset (not set, no baseline) and the losses cannot take the term, it resolves to
``kl_mode='none'`` with a warning; set explicitly, the pair is refused in one line.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

from tidpo.losses.loss_family import F_DIVERGENCES, LossFamily
from tidpo.losses.loss_type import LossSettings
from tidpo.losses.preference import LOSS_TYPES, loss_spec


def _help(text: str) -> dict:
    return {"help": text}


@dataclass
class LossOptions:
    """The loss fields of :class:`~tidpo.training.config.TIDPOConfig` (mixed in; TRL's ``DPOConfig`` names)."""

    loss_type: list[str] = field(
        default_factory=lambda: ["sigmoid"],
        metadata=_help(
            "Preference loss(es) over the token-weighted log-ratios (TRL's names): "
            + ", ".join(f"'{name}' ({spec.help})" for name, spec in LOSS_TYPES.items())
            + ". Several are summed with loss_weights."
        ),
    )
    loss_weights: list[float] | None = field(
        default=None, metadata=_help("Weight of each loss_type (default 1 each); same length as loss_type.")
    )
    label_smoothing: float = field(
        default=0.0, metadata=_help("ε of robust DPO (in [0, 0.5)), EXO (> 0) and AOT (0 = none).")
    )
    discopop_tau: float = field(default=0.05, metadata=_help("τ of the DiscoPOP loss (> 0)."))
    use_weighting: bool = field(
        default=False, metadata=_help("WPO: weight each pair by the policy's length-normalised probabilities.")
    )
    ld_alpha: float | None = field(
        default=None,
        metadata=_help("LD-DPO: token weights times ld_alpha (in [0, 1]) past the pair's shared length; None: off."),
    )
    f_divergence_type: str = field(
        default="reverse_kl",
        metadata=_help("f-DPO's divergence: " + ", ".join(F_DIVERGENCES) + " (the others with margin losses only)."),
    )
    f_alpha_divergence_coef: float = field(default=0.5, metadata=_help("a of f_divergence_type='alpha_divergence'."))
    sync_ref_model: bool = field(
        default=False,
        metadata=_help(
            "TR-DPO: every ref_model_sync_steps steps the reference becomes α·policy + (1 − α)·reference "
            "(α = ref_model_mixup_alpha). Needs a reference model of its own (not a PEFT policy's adapters off)."
        ),
    )
    ref_model_mixup_alpha: float = field(default=0.6, metadata=_help("α of sync_ref_model, in [0, 1]."))
    ref_model_sync_steps: int = field(default=512, metadata=_help("Optimizer steps between sync_ref_model updates."))

    def loss_family(self) -> LossFamily:
        """The losses these options choose, with the KL term of the resolved ``kl_mode``."""
        settings = LossSettings(self.beta, self.label_smoothing, self.discopop_tau)
        weights = None if self.loss_weights is None else tuple(self.loss_weights)
        return LossFamily(
            names=tuple(self.loss_type),
            weights=weights,
            settings=settings,
            f_divergence_type=self.f_divergence_type,
            f_alpha_divergence_coef=self.f_alpha_divergence_coef,
            use_weighting=self.use_weighting,
            kl_mode=self.kl_mode,
            kl_weight=self.kl_weight,
        )


def normalize_loss_fields(c) -> None:
    """TRL's spellings: one ``loss_type`` string as a list (``DPOConfig`` does the same)."""
    if isinstance(c.loss_type, str):
        c.loss_type = [c.loss_type]
    c.loss_type = list(c.loss_type)
    for name in c.loss_type:
        loss_spec(name)


def losses_refuse_kl(c) -> str | None:
    """Why the chosen losses cannot take the TDPO KL term (None when they can)."""
    if c.f_divergence_type != "reverse_kl":
        return f"f_divergence_type={c.f_divergence_type!r} (the TDPO term is a reverse-KL term)"
    refusing = [n for n in c.loss_type if loss_spec(n).uses_reference and not loss_spec(n).kl]
    if refusing:
        return f"loss_type={refusing[0]!r} (it does not read the pair margin the term is subtracted from)"
    if not any(loss_spec(n).kl for n in c.loss_type):
        return f"loss_type={c.loss_type} (no loss reads the pair margin the term is subtracted from)"
    return None


def default_kl_mode(c) -> None:
    """Before the preset fills ``kl_mode``: 'none' (with a warning) where the losses cannot take the term."""
    if c.kl_mode is not None or c.kl_weight is not None:
        return
    why = losses_refuse_kl(c)
    if why is not None:
        warnings.warn(f"kl_mode='none': the preset's TDPO KL term does not compose with {why}", UserWarning, 5)
        c.kl_mode = "none"


def check_loss_fields(c) -> None:
    """Ranges and the pairs of options that cannot run together, each one line naming them."""
    if c.loss_weights is not None and len(c.loss_weights) != len(c.loss_type):
        raise ValueError(f"loss_weights {c.loss_weights} must give one weight per loss_type {c.loss_type}")
    for name in ("label_smoothing", "discopop_tau", "f_alpha_divergence_coef", "ref_model_mixup_alpha"):
        if not math.isfinite(getattr(c, name)):
            raise ValueError(f"{name} must be a finite number, got {getattr(c, name)!r}")
    for name, ok, rule in _loss_rules(c):
        if not ok:
            raise ValueError(f"{name} must be {rule}, got {getattr(c, name)!r}")
    for problem in _loss_pairs(c):
        raise ValueError(problem)


def _loss_rules(c) -> list[tuple[str, bool, str]]:
    eps, types = c.label_smoothing, set(c.loss_type)
    return [
        ("label_smoothing", 0 <= eps <= 1, "in [0, 1]"),
        ("label_smoothing", "exo_pair" not in types or 0 < eps < 1, "in (0, 1) with loss_type 'exo_pair'"),
        ("label_smoothing", "robust" not in types or eps < 0.5, "in [0, 0.5) with loss_type 'robust'"),
        ("discopop_tau", c.discopop_tau > 0, "> 0"),
        ("ld_alpha", c.ld_alpha is None or 0 <= c.ld_alpha <= 1, "in [0, 1] or None"),
        ("f_divergence_type", c.f_divergence_type in F_DIVERGENCES, f"one of {F_DIVERGENCES}"),
        ("ref_model_mixup_alpha", 0 <= c.ref_model_mixup_alpha <= 1, "in [0, 1]"),
        ("ref_model_sync_steps", c.ref_model_sync_steps >= 1, ">= 1"),
    ]


def _loss_pairs(c) -> list[str]:
    """One line per pair of options that cannot run together."""
    problems = []
    no_f = [n for n in c.loss_type if not loss_spec(n).f_divergence]
    if c.f_divergence_type != "reverse_kl" and no_f:
        problems.append(
            f"f_divergence_type={c.f_divergence_type!r} with loss_type={no_f[0]!r}: that loss has no f-divergence "
            "form (it does not read the reward difference); use 'reverse_kl'"
        )
    sorting = [n for n in c.loss_type if loss_spec(n).sorts]
    if c.use_weighting and sorting:
        problems.append(
            f"use_weighting with loss_type={sorting[0]!r}: that loss sorts the batch, so WPO's per-pair weights "
            "have no pair to go to"
        )
    why = losses_refuse_kl(c)
    if c.kl_weight > 0 and why is not None:
        problems.append(f"kl_mode={c.kl_mode!r} (kl_weight={c.kl_weight}) with {why}: set kl_mode='none'")
    if c.sync_ref_model and c.precompute_ref_log_probs:
        problems.append(
            "sync_ref_model with precompute_ref_log_probs: the reference changes during training, so its "
            "log-probs cannot be computed once; drop one of them"
        )
    return problems
