"""Token weights for the weighted DPO reward (arXiv 2505.19653v3, Eq. 8) and the ablation estimators.

:func:`token_weights` reads as span → scores → Eq. 8 → normalise:

- the *span* the weights are built over: the response (``weight_span="response"``, the paper) or prompt +
  response (``"sequence"``, the authors' code);
- the raw *scores* ``I`` of each token in the span: the gradient attribution (Eqs. 5–6), a user estimator's
  scores, the dataset's per-token values (``importance="columns"``), or none;
- Eq. 8: ``W = λ·I/ΣI + (1 − λ)·P`` with the Gaussian prior ``P`` of Eq. 7 over the span;
- *normalise*: ``w = T · W / Σ W`` over the span (mean 1, ``weight_norm="mean"``) or ``W / Σ W`` (sum 1),
  then keep the response tokens (zero elsewhere).

With the response span the last step keeps everything that was normalised, so the response weights have mean 1.
Deviation (the authors' code, ``weight_span="sequence"``): the weights are normalised over prompt + response and
the response slice is kept *as it is*, so its weights need not average 1 and the chosen and rejected rows of a
pair generally carry different totals.

Which estimator needs what is one table, :data:`ESTIMATORS`, one module per estimator in
:mod:`tidpo.importance.estimators` (the entry: :class:`tidpo.importance.estimator.Estimator`). ``uniform`` and
``random`` have no span, prior or scores (kind ``"response"``): they are all 1 (plain DPO weighting) or uniform noise
on the response, normalised there. ``columns_raw`` (kind ``"given"``) has none either: the dataset's per-token
values are the weights as they are (zero off the response).

The dataset's values (``columns`` and ``columns_raw``) come from its ``chosen_weights`` / ``rejected_weights``
columns, one number per response token without the final EOS (the rule and its checks:
:mod:`tidpo.data.token_weights`); the EOS gets 0. They reach :func:`token_weights` as ``column_weights``, ``(B, L)``
in the token frame, 0 on the prompt and padding (``PreferenceCollator``'s ``batch["token_weights"]``).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from tidpo.importance.estimator import Estimator, EstimatorInputs, from_callable
from tidpo.importance.estimators import ESTIMATORS
from tidpo.importance.prior import gaussian_prior

SPANS = ("response", "sequence")
NORMS = ("mean", "sum")
# A user estimator maps (input_ids, attention_mask, completion_mask) -> (B, L) non-negative raw scores, used in
# place of the gradient attribution I (and mixed with the prior by λ like it).
EstimatorFn = Callable[[Tensor, Tensor, Tensor], Tensor]


def estimator_spec(estimator: str | EstimatorFn | Estimator) -> Estimator:
    """The table entry of ``estimator`` (a name of :data:`ESTIMATORS`, a callable, or an entry itself)."""
    if isinstance(estimator, Estimator):
        return estimator
    if callable(estimator):
        return from_callable(estimator)
    if estimator not in ESTIMATORS:
        raise ValueError(f"importance must be one of {tuple(ESTIMATORS)} or a callable, got {estimator!r}")
    return ESTIMATORS[estimator]


def needs_attribution(estimator: str | EstimatorFn, mix: float) -> bool:
    """Whether ``estimator`` with ``λ = mix`` uses the gradient attribution (a backward to the embeddings)."""
    return estimator_spec(estimator).uses_attribution(mix)


def needs_weight_columns(estimator: str | EstimatorFn) -> bool:
    """Whether ``estimator`` reads the dataset's ``chosen_weights`` / ``rejected_weights`` columns (``columns``
    and ``columns_raw``, whatever ``λ``)."""
    return estimator_spec(estimator).reads_columns


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


def normalize_weights(raw: Tensor, span_mask: Tensor, norm: str = "mean") -> Tensor:
    """Rescale non-negative ``raw`` weights to mean 1 (``"mean"``: ``w = T·W/ΣW``) or sum 1 (``"sum"``) over
    ``span_mask``, zero elsewhere.

    A span of one token gets weight 1; a row whose raw weights are all 0 gets uniform weights, so the result is
    never NaN. Rows with an empty span are all 0.
    """
    if norm not in NORMS:
        raise ValueError(f"weight_norm must be one of {NORMS}, got {norm!r}")
    mask = span_mask.to(raw.dtype)
    raw = torch.where(((raw * mask).sum(-1, keepdim=True) > 0), raw * mask, mask)
    total = raw.sum(-1, keepdim=True).clamp(min=torch.finfo(raw.dtype).tiny)
    scale = mask.sum(-1, keepdim=True) if norm == "mean" else torch.ones_like(total)
    return raw * scale / total  # w = T · W / Σ W  (or W / Σ W)


def weight_span_mask(span: str, completion_mask: Tensor, attention_mask: Tensor | None) -> Tensor:
    """The positions the weights are built over: the response, or every real token (``"sequence"``)."""
    if span not in SPANS:
        raise ValueError(f"weight_span must be one of {SPANS}, got {span!r}")
    if span == "response":
        return completion_mask.bool()
    if attention_mask is None:
        raise ValueError("weight_span='sequence' needs attention_mask")
    return attention_mask.bool()


def token_weights(
    estimator: str | EstimatorFn | Estimator,
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
    column_weights: Tensor | None = None,
    policy_logps: Tensor | None = None,
    ref_logps: Tensor | None = None,
) -> Tensor:
    """Per-token weights ``w`` ``(B, L)`` float32 ≥ 0 for Eqs. 9–10, zero off the response, in the token frame.

    ``estimator``: a name of :data:`ESTIMATORS`, a table entry, or a callable ``(input_ids, attention_mask,
    completion_mask) -> (B, L)`` scores. Every other tensor is ``(B, L)`` and read only when the estimator declares
    it (:data:`tidpo.importance.estimator.INPUTS`): the ``attributions`` ``I`` of Eqs. 5–6, ``column_weights`` (the
    dataset's values), ``policy_logps`` / ``ref_logps`` (no gradient); ``attention_mask`` is also the span of
    ``span="sequence"``. ``mix`` is ``λ``, ``sigma_div`` the prior's ``T / σ``, ``norm`` ``"mean"`` or ``"sum"``.

    Raises:
        ValueError: a needed input missing, of the wrong shape or negative, or a row with no weight anywhere.
        FloatingPointError: scores with NaN or Inf.
    """
    spec = estimator_spec(estimator)
    mix = spec.effective_mix(mix)
    logps = (policy_logps, ref_logps)
    x = EstimatorInputs(
        completion_mask, mix, attributions, *logps, column_weights, input_ids, attention_mask, generator
    )
    if spec.kind == "given":  # the estimator's values are the weights, on the response
        return spec.scores(x)
    response = completion_mask.bool()
    if spec.kind == "response":  # on the response alone: no span, no prior
        return normalize_weights(spec.scores(x), response, norm)
    return _hybrid(spec, x, span, sigma_div, norm)


def _hybrid(spec: Estimator, x: EstimatorInputs, span: str, sigma_div: float, norm: str) -> Tensor:
    """Span → scores → Eq. 8 with the prior → normalise over the span, keeping the response."""
    mix, response = x.mix, x.completion_mask.bool()
    if not 0.0 <= mix <= 1.0:
        raise ValueError(f"importance_mix (λ) must be in [0, 1], got {mix}")
    span_mask = weight_span_mask(span, response, x.attention_mask)  # span
    no_scores = "attributions" in spec.needs and mix == 0
    scores = torch.zeros(response.shape, device=response.device) if no_scores else spec.scores(x)
    weights = hybrid_token_weights(scores, span_mask, gaussian_prior(span_mask, sigma_div), mix)  # Eq. (8)
    return normalize_weights(weights, span_mask, norm) * response  # normalise over the span, keep the response
