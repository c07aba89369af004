"""What a preference loss is: the table entry that the config's checks, the trainer and the docs read, so that a new
loss is one file in :mod:`tidpo.losses.preference` (TRL 1.16's ``loss_type`` values, each over token weights).

Every loss reads its pair from :class:`PairTerms`, built from the token-weighted log-ratios of Eqs. 9-10, so
token importance enters each loss through the same numbers as it enters Eq. 12. A loss declares:

- ``reads``: what it consumes: ``"margin"`` (``s_w − s_l`` minus the TDPO KL term, ``s`` the f-divergence score of
  the weighted log-ratio), ``"scores"`` (the two scores, each divided by its response length), ``"logratios"`` (the
  two weighted log-ratios on their own), ``"logps"`` (policy and reference weighted sequence log-probs) or
  ``"policy"`` (the policy's per-token log-probs only, no reference);
- ``kl``: whether the TDPO KL term (docs/method.md §3) enters it: only a loss of the pair margin takes it;
- ``f_divergence``: whether ``f_divergence_type`` other than ``reverse_kl`` is defined for it (TRL's set);
- ``sorts``: whether it pairs rows by sorting the batch (then a per-pair weight, WPO's, has no pair to go to);
- ``triplet``: whether the anchor triplet (Eq. 13) may be added to it (it is an additive term: every loss here).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

from torch import Tensor

READS = ("margin", "scores", "logratios", "logps", "policy")


@dataclass(frozen=True)
class LossSettings:
    """The numbers a loss may read besides its pair: ``β``, ``label_smoothing`` (ε of robust DPO, EXO, AOT) and
    ``discopop_tau``."""

    beta: float
    label_smoothing: float = 0.0
    discopop_tau: float = 0.05


class PairTerms:
    """One micro-batch's pairs as the losses read them, ``(B,)`` per pair unless stated (computed on first use).

    Args:
        chosen_logratio, rejected_logratio: ``Σ_t w_t ρ_t`` of each response (Eqs. 9-10).
        score: the f-divergence score of a weighted log-ratio (the identity for ``reverse_kl``).
        kl_term: the TDPO KL term subtracted from the margin (a 0-d zero when there is none).
        policy_logps, ref_logps: ``(2B, L)`` per-token log-probs, token frame (chosen rows first).
        weights: ``(2B, L)`` the token weights (0 off the response). completion_mask: ``(2B, L)``.
    """

    def __init__(self, chosen_logratio, rejected_logratio, score, kl_term, policy_logps, ref_logps, weights, mask):
        self.chosen_logratio, self.rejected_logratio = chosen_logratio, rejected_logratio
        self._score, self.kl_term = score, kl_term
        self.policy_logps, self.ref_logps, self.weights, self.completion_mask = policy_logps, ref_logps, weights, mask

    @functools.cached_property
    def chosen_score(self) -> Tensor:
        return self._score(self.chosen_logratio)

    @functools.cached_property
    def rejected_score(self) -> Tensor:
        return self._score(self.rejected_logratio)

    @functools.cached_property
    def margin(self) -> Tensor:
        """``s_w − s_l − KL term``: with ``reverse_kl`` this is Eq. 12's ``z`` (docs/method.md §3)."""
        delta = self.chosen_score - self.rejected_score
        return delta - self.kl_term.to(delta)

    @functools.cached_property
    def tokens(self) -> tuple[Tensor, Tensor]:
        """Response tokens of the chosen and rejected rows (at least 1), for the per-token losses."""
        return self.completion_mask.sum(-1).clamp(min=1.0).chunk(2)

    @functools.cached_property
    def weighted_logps(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """``Σ_t w_t log π_θ`` and ``Σ_t w_t log π_ref`` of the chosen and rejected rows."""
        policy = (self.policy_logps * self.weights).sum(-1).chunk(2)
        ref = (self.ref_logps * self.weights).sum(-1).chunk(2)
        return (*policy, *ref)


@dataclass(frozen=True)
class LossType:
    """One row of the loss table (see the module docstring). ``per_pair(terms, settings) -> (B,)`` losses."""

    name: str
    per_pair: Callable[[PairTerms, LossSettings], Tensor]
    reads: str
    help: str
    kl: bool = False
    f_divergence: bool = False
    sorts: bool = False
    triplet: bool = True

    def __post_init__(self):
        if self.reads not in READS:
            raise ValueError(f"loss {self.name!r}: reads must be one of {READS}, got {self.reads!r}")
        if self.kl and self.reads != "margin":
            raise ValueError(f"loss {self.name!r}: only a loss of the margin can take the TDPO KL term")

    @property
    def uses_reference(self) -> bool:
        return self.reads != "policy"
