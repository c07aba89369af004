"""TI-DPO losses (arXiv 2505.19653v3, Eqs. 9–14, plus the TDPO KL term of the authors' final setting).

Pure functions on tensors: usable on their own in a custom training loop. Token weights arrive as tensors;
this package never imports ``tidpo.importance``.
"""

from tidpo.losses.dpo import (
    KL_MODES,
    preference_loss,
    sequence_kl,
    tdpo_kl_term,
    ti_dpo_base_loss,
    weighted_logratio,
)
from tidpo.losses.objective import ObjectiveOutput, ti_dpo_objective
from tidpo.losses.triplet import TripletOutput, triplet_loss

__all__ = [
    "KL_MODES",
    "ObjectiveOutput",
    "TripletOutput",
    "preference_loss",
    "sequence_kl",
    "tdpo_kl_term",
    "ti_dpo_base_loss",
    "ti_dpo_objective",
    "triplet_loss",
    "weighted_logratio",
]
