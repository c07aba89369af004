"""Gaussian positional prior over the weighted span (arXiv 2505.19653v3, Eq. 7)."""

from __future__ import annotations

import torch
from torch import Tensor


def gaussian_prior(span_mask: Tensor, sigma_div: float = 4.0) -> Tensor:
    """``P(t) = exp(−½((t − μ)/σ)²)``, ``μ = (T − 1)/2``, ``σ = max(T / sigma_div, 1)``, normalised to sum 1.

    ``t`` counts the span's positions from 0 in each row; ``T`` is the row's span length.

    Args:
        span_mask: ``(B, L)`` bool or 0/1, the positions of the weighted span (contiguous in practice).
        sigma_div: the divisor of ``T`` in ``σ`` (paper 4, authors' code 8).

    Returns:
        ``(B, L)`` float32, sums to 1 over each non-empty span, 0 elsewhere (all 0 for an empty span).
    """
    if sigma_div <= 0:
        raise ValueError(f"prior_sigma_div must be > 0, got {sigma_div}")
    mask = span_mask.bool()
    span_len = mask.sum(-1, keepdim=True).float()  # T, (B, 1)
    t = (mask.long().cumsum(-1) - 1).float()  # position within the span
    mu = (span_len - 1) / 2
    sigma = (span_len / sigma_div).clamp(min=1.0)
    density = torch.exp(-0.5 * ((t - mu) / sigma) ** 2) * mask  # Eq. (7)
    return density / density.sum(-1, keepdim=True).clamp(min=torch.finfo(density.dtype).tiny)
