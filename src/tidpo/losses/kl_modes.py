"""The sequential-KL term of the base loss (docs/method.md §3; TDPO, Zeng et al., arXiv 2404.11999), one row per
mode: what it subtracts from ``Δr`` and the ``α`` (``kl_weight``) it fixes. A new mode is one row here (and its
test); the config's check, its help and the loss read this table.

Deviation: the KL term is not in the paper's equations; it is the authors' final setting (TDPO2, α = 0.5).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class KLMode:
    """``term(chosen_seq_kl, rejected_seq_kl, α) -> (B,)``, or None for no term; ``fixed_weight``: the ``α`` the
    mode fixes (None: ``kl_weight`` is free); ``help``: its line in the config's documentation."""

    name: str
    term: Callable[[Tensor, Tensor, float], Tensor] | None
    help: str
    fixed_weight: float | None = None


def _tdpo2(chosen_seq_kl: Tensor, rejected_seq_kl: Tensor, alpha: float) -> Tensor:
    return alpha * (rejected_seq_kl - chosen_seq_kl.detach())  # TDPO2: sg[SeqKL(x, y_w)]


def _tdpo1(chosen_seq_kl: Tensor, rejected_seq_kl: Tensor, alpha: float) -> Tensor:
    return alpha * (rejected_seq_kl - chosen_seq_kl)


KL_MODE_TABLE: dict[str, KLMode] = {
    mode.name: mode
    for mode in (
        KLMode("tdpo2", _tdpo2, "α = kl_weight, no gradient through the chosen side's KL (default)"),
        KLMode("tdpo1", _tdpo1, "α = 1, no stop-gradient", fixed_weight=1.0),
        KLMode("none", None, "no KL term (the paper's Eq. 12)", fixed_weight=0.0),
    )
}
KL_MODES = tuple(KL_MODE_TABLE)


def kl_mode_spec(name: str) -> KLMode:
    if name not in KL_MODE_TABLE:
        raise ValueError(f"kl_mode must be one of {KL_MODES}, got {name!r}")
    return KL_MODE_TABLE[name]


def tdpo_kl_term(
    chosen_seq_kl: Tensor | None, rejected_seq_kl: Tensor | None, kl_mode: str, kl_weight: float
) -> Tensor:
    """``α · (SeqKL(x, y_l) − SeqKL(x, y_w))`` per pair, the amount subtracted from ``Δr`` (docs/method.md §3).

    Args:
        chosen_seq_kl, rejected_seq_kl: ``(B,)`` sequential KLs of the chosen and rejected responses (may be None
            when the mode has no term or ``kl_weight`` is 0).
        kl_mode: a name of :data:`KL_MODE_TABLE`. kl_weight: ``α``.

    Returns:
        ``(B,)``, or a 0-d zero when there is no term.
    """
    mode = kl_mode_spec(kl_mode)
    if mode.term is None or kl_weight == 0.0:
        return torch.zeros(())
    if chosen_seq_kl is None or rejected_seq_kl is None:
        raise ValueError(f"kl_mode={kl_mode!r} with kl_weight={kl_weight} needs both sequential KLs")
    return mode.term(chosen_seq_kl, rejected_seq_kl, kl_weight)
