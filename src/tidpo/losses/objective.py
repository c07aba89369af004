"""The total TI-DPO objective (arXiv 2505.19653v3, Eq. 14): ``L = mean(L_base) + γ · L_triplet``."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor


@dataclass
class ObjectiveOutput:
    """``loss`` (scalar, what is optimised) and its parts."""

    loss: Tensor
    base_loss: Tensor
    triplet_loss: Tensor | None


def ti_dpo_objective(base_losses: Tensor, triplet: Tensor | None, triplet_weight: float) -> ObjectiveOutput:
    """Combine the per-pair base losses ``(B,)`` and the triplet loss (scalar or None).

    ``triplet_weight`` (``γ``) = 0 gives the base loss alone; ``triplet`` may then be None.
    """
    base = base_losses.mean()
    if triplet_weight == 0.0:
        return ObjectiveOutput(loss=base, base_loss=base, triplet_loss=triplet)
    if triplet is None:
        raise ValueError(f"triplet_weight={triplet_weight} needs a triplet loss")
    return ObjectiveOutput(loss=base + triplet_weight * triplet, base_loss=base, triplet_loss=triplet)  # Eq. (14)
