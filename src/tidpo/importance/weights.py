"""Token weights for the weighted DPO reward (arXiv 2505.19653v3, Eq. 8) and the ablation estimators.

``I_norm = I / Σ I`` over the span; ``W = λ·I_norm + (1 − λ)·P``; then ``w = T · W / Σ W`` on the response
(mean 1, ``weight_norm="mean"``) or ``W / Σ W`` (sum 1, ``weight_norm="sum"``), zero elsewhere.

Deviation: with ``weight_span="sequence"`` (the authors' code) ``I_norm`` and ``P`` are built over prompt +
response and only the response slice is kept; that slice is then rescaled to mean 1 (or sum 1) over the
response so that the reward keeps the scale of DPO whatever the prompt length. The SPEC leaves the final
rescale of the sequence variant open; this choice makes ``weight_norm`` mean the same thing for both spans.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from tidpo.importance.prior import gaussian_prior

ESTIMATORS = ("hybrid", "gradient", "prior", "uniform", "random")
SPANS = ("response", "sequence")
NORMS = ("mean", "sum")
# A user estimator maps (input_ids, attention_mask, completion_mask) -> (B, L) non-negative raw scores, used in
# place of the gradient attribution I (and mixed with the prior by λ like it).
Estimator = Callable[[Tensor, Tensor, Tensor], Tensor]


def hybrid_token_weights(importance: Tensor, span_mask: Tensor, prior: Tensor, mix: float) -> Tensor:
    """``W = λ·I/ΣI + (1 − λ)·P`` over the span (Eq. 8); rows with ``ΣI = 0`` fall back to the prior alone.

    Args:
        importance: ``(B, L)`` raw attributions ``I`` (≥ 0).
        span_mask: ``(B, L)`` the span over which ``I`` is normalised.
        prior: ``(B, L)`` the Gaussian prior, sum 1 over the span.
        mix: ``λ`` in [0, 1].

    Returns:
        ``(B, L)``, sums to 1 over each non-empty span.
    """
    span = span_mask.to(importance.dtype)
    scores = importance * span
    total = scores.sum(-1, keepdim=True)
    importance_norm = torch.where(total > 0, scores / total.clamp(min=torch.finfo(total.dtype).tiny), prior)
    return mix * importance_norm + (1.0 - mix) * prior  # Eq. (8)


def normalize_weights(raw: Tensor, completion_mask: Tensor, norm: str = "mean") -> Tensor:
    """Rescale non-negative ``raw`` weights on the response to mean 1 (``"mean"``) or sum 1 (``"sum"``).

    A response of one token gets weight 1; a row whose raw weights are all 0 gets uniform weights, so the
    result is never NaN. Rows without response tokens are all 0.
    """
    if norm not in NORMS:
        raise ValueError(f"weight_norm must be one of {NORMS}, got {norm!r}")
    mask = completion_mask.to(raw.dtype)
    raw = torch.where(((raw * mask).sum(-1, keepdim=True) > 0), raw * mask, mask)
    total = raw.sum(-1, keepdim=True).clamp(min=torch.finfo(raw.dtype).tiny)
    scale = mask.sum(-1, keepdim=True) if norm == "mean" else torch.ones_like(total)
    return raw * scale / total  # w = T · W / Σ W  (or W / Σ W)


def _check_scores(scores: Tensor, like: Tensor, what: str) -> Tensor:
    if scores.shape != like.shape:
        raise ValueError(f"{what} must have shape {tuple(like.shape)}, got {tuple(scores.shape)}")
    if not torch.isfinite(scores).all():
        raise FloatingPointError(f"{what} contain NaN or Inf; refusing to build token weights from them")
    if (scores < 0).any():
        raise ValueError(f"{what} must be non-negative")
    return scores.float()


def token_weights(
    estimator: str | Estimator,
    completion_mask: Tensor,
    *,
    attributions: Tensor | None = None,
    input_ids: Tensor | None = None,
    attention_mask: Tensor | None = None,
    mix: float = 0.7,
    sigma_div: float = 4.0,
    span: str = "response",
    norm: str = "mean",
    generator: torch.Generator | None = None,
) -> Tensor:
    """Per-token weights ``w`` for Eqs. 9–10, zero off the response, in the token frame.

    Args:
        estimator: ``"hybrid"`` (Eq. 8 with ``λ = mix``), ``"gradient"`` (λ = 1), ``"prior"`` (λ = 0),
            ``"uniform"`` (plain DPO), ``"random"`` (ablation) or a callable (see ``Estimator``).
        completion_mask: ``(B, L)`` response tokens (incl. the final EOS).
        attributions: ``(B, L)`` gradient attributions ``I`` (needed when the estimator uses them).
        input_ids: ``(B, L)``, passed to a callable estimator.
        attention_mask: ``(B, L)``, the span for ``span="sequence"``.
        mix: ``λ``. sigma_div: the prior's ``T / σ``. span: ``"response"`` or ``"sequence"``.
        norm: ``"mean"`` or ``"sum"``. generator: for ``"random"``.

    Returns:
        ``(B, L)`` float32, ≥ 0.
    """
    response = completion_mask.bool()
    if estimator == "uniform":
        return normalize_weights(response.float(), response, norm)
    if estimator == "random":
        raw = torch.rand(response.shape, generator=generator, device=response.device)
        return normalize_weights(raw, response, norm)
    if not callable(estimator) and estimator not in ESTIMATORS:
        raise ValueError(f"importance must be one of {ESTIMATORS} or a callable, got {estimator!r}")
    if span not in SPANS:
        raise ValueError(f"weight_span must be one of {SPANS}, got {span!r}")
    mix = {"gradient": 1.0, "prior": 0.0}.get(estimator, mix) if isinstance(estimator, str) else mix
    if not 0.0 <= mix <= 1.0:
        raise ValueError(f"importance_mix (λ) must be in [0, 1], got {mix}")
    if span == "sequence" and attention_mask is None:
        raise ValueError("weight_span='sequence' needs attention_mask")
    span_mask = response if span == "response" else attention_mask.bool()
    if callable(estimator):
        scores = _check_scores(estimator(input_ids, attention_mask, completion_mask), response, "estimator scores")
    elif mix > 0:
        if attributions is None:
            raise ValueError(f"importance={estimator!r} with λ={mix} needs gradient attributions")
        scores = _check_scores(attributions, response, "attributions")
    else:
        scores = torch.zeros(response.shape, device=response.device)
    weights = hybrid_token_weights(scores, span_mask, gaussian_prior(span_mask, sigma_div), mix)
    return normalize_weights(weights, response, norm)
