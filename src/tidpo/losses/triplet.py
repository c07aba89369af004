"""Triplet loss on per-token log-ratios (arXiv 2505.19653v3, Eq. 13).

``L = max(0, Σ_t (d_t − b_t)² − Σ_t (c_t − d_t)² + margin)``, mean over the batch, with ``d = ρ(anchor)``,
``b = ρ(chosen)``, ``c = ρ(rejected)`` compared position by position (index-aligned from the first response
token) over the tokens both sequences of each distance have. No length normalisation, no token weights.
Deviation: the paper gives no margin value and no rule for unequal lengths; the overlap rule and the default
margin follow docs/method.md §4.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class TripletOutput:
    """Triplet loss (scalar) and its per-pair distances ``(B,)``."""

    loss: Tensor
    dist_pos: Tensor
    dist_neg: Tensor


def _overlap_sq_distance(a: Tensor, a_mask: Tensor, b: Tensor, b_mask: Tensor) -> Tensor:
    """``Σ_t (a_t − b_t)²`` over the positions both rows have; inputs in the response frame ``(B, T*)``."""
    width = min(a.shape[1], b.shape[1])
    both = (a_mask[:, :width].bool() & b_mask[:, :width].bool()).to(a.dtype)
    return ((a[:, :width] - b[:, :width]) ** 2 * both).sum(-1)


def triplet_loss(
    anchor: Tensor,
    anchor_mask: Tensor,
    chosen: Tensor,
    chosen_mask: Tensor,
    rejected: Tensor,
    rejected_mask: Tensor,
    margin: float,
) -> TripletOutput:
    """Eq. 13 on response-frame log-ratios (index 0 = first response token of each row).

    Args:
        anchor, chosen, rejected: ``(B, T_a)``, ``(B, T_w)``, ``(B, T_l)`` per-token log-ratios ``ρ``.
        anchor_mask, chosen_mask, rejected_mask: matching masks of real response tokens.
        margin: the triplet margin (``α`` of Eq. 13; ``triplet_margin`` here).

    Returns:
        :class:`TripletOutput`; ``loss`` is the batch mean.
    """
    dist_pos = _overlap_sq_distance(anchor, anchor_mask, chosen, chosen_mask)  # Σ (d_t − b_t)²
    dist_neg = _overlap_sq_distance(rejected, rejected_mask, anchor, anchor_mask)  # Σ (c_t − d_t)²
    loss = torch.clamp(dist_pos - dist_neg + margin, min=0.0).mean()  # Eq. (13)
    return TripletOutput(loss=loss, dist_pos=dist_pos, dist_neg=dist_neg)
