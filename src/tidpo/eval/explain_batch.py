"""The per-token numbers of one collated batch that ``tidpo explain`` shows: the weights any estimator of
:data:`tidpo.importance.ESTIMATORS` gives (as training computes them) and their components.

An estimator that reads the gradient attribution (``hybrid``, ``gradient``) gets one forward from detached input
embeddings and the attribution of its target (Eqs. 5–6); any other gets one forward without a graph (its scores
read the policy's log-probabilities, or nothing). Either way the weights are :func:`tidpo.importance.token_weights`
of the estimator on that batch, and the components are the estimator's scores ``I``, their share ``I/ΣI`` over the
weighted span and the Gaussian prior ``P`` (Eq. 7) that Eq. 8 mixes them with. Estimators that read the dataset's
own weight columns are refused: there is nothing to compute.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch import Tensor

from tidpo.importance import gaussian_prior, hybrid_token_weights, target_attributions, token_weights
from tidpo.importance.attribution import last_token_index
from tidpo.importance.estimator import Estimator, EstimatorInputs
from tidpo.importance.target import TargetInputs
from tidpo.importance.targets import attribution_target_spec
from tidpo.importance.weights import estimator_spec, normalize_weights
from tidpo.ops import per_token_logps

EXPLAIN_SEED = 0  # the generator of estimators that draw (``random``), so an explanation is reproducible


@dataclass
class BatchExplanation:
    """Per-token quantities of one collated batch, each ``(2B, L)`` in the token frame (B chosen rows first).

    Attributes:
        weights: ``w``, exactly ``token_weights(importance, ...)``: mean 1 over each response, 0 elsewhere.
        gradient_share: the scores' share ``I/ΣI`` over the weighted span (the prior where ``ΣI = 0``, as Eq. 8's
            guard does); for an estimator without the prior (``uniform``, ``random``), the share over the response.
        prior: ``P`` over the weighted span (Eq. 7), sum 1 over it; 0 for an estimator without the prior.
        attributions: the raw scores ``I``: the gradient attribution ``‖∂L_target/∂e_i‖₁`` (Eqs. 5–6) for the
            attribution estimators, else the estimator's own scores (``confidence``: 1 on the tokens less likely
            than the response's mean token probability).
        logps: ``log π_θ(x_i | x_<i)``.
    """

    weights: Tensor
    gradient_share: Tensor
    prior: Tensor
    attributions: Tensor
    logps: Tensor


def explain_batch(
    model,
    batch: dict[str, Tensor],
    mix: float = 0.7,
    sigma_div: float = 4.0,
    span: str = "response",
    target: str = "max_logit",
    importance: str = "hybrid",
):
    """Weights, their components, scores and log-probs of one collated batch (TRL layout, ``(2B, L)``).

    The policy runs once in eval mode (its mode is restored afterwards); only ``torch.autograd.grad`` with respect
    to detached input embeddings is taken, so no parameter's ``.grad`` is touched.

    Args:
        model: a causal LM (or PEFT model) with ``get_input_embeddings``.
        batch: ``input_ids``, ``attention_mask``, ``completion_mask`` from :class:`PreferenceCollator`.
        mix: ``λ``. sigma_div: ``T / σ`` of the prior. span: ``"response"`` or ``"sequence"``.
        target: the attribution target, a name of :data:`tidpo.importance.TARGETS` (``"max_logit"``: Eq. 5).
        importance: the estimator, a name of :data:`tidpo.importance.ESTIMATORS` (training's ``importance``).

    Returns:
        :class:`BatchExplanation`, float32 tensors on CPU.

    Raises:
        ValueError: an estimator that reads the dataset's weight columns.
    """
    spec = estimator_spec(importance)
    if spec.reads_columns:
        raise ValueError(f"importance={importance!r} takes its weights from the dataset's columns; nothing to explain")
    device = next(model.parameters()).device
    input_ids, attention_mask, completion_mask = (
        batch[key].to(device) for key in ("input_ids", "attention_mask", "completion_mask")
    )
    target = target if spec.uses_attribution(mix) else None
    logps, attributions = _forward(model, input_ids, attention_mask, completion_mask, target)
    inputs = EstimatorInputs(
        completion_mask,
        spec.effective_mix(mix),
        attributions,
        policy_logps=logps * completion_mask,  # training's: 0 off the response
        input_ids=input_ids,
        attention_mask=attention_mask,
        generator=torch.Generator(device).manual_seed(EXPLAIN_SEED),
    )
    scores = _scores(spec, inputs)
    # training's weighting of these scores (the table entry with its scores already drawn: one draw, one pass)
    scored = dataclasses.replace(spec, scores=lambda _: scores)
    weights = token_weights(
        scored, completion_mask, attention_mask=attention_mask, mix=mix, sigma_div=sigma_div, span=span
    )
    components = _components(spec.hybrid, scores, completion_mask, attention_mask, sigma_div, span)
    return BatchExplanation(*(t.detach().float().cpu() for t in (weights, *components, logps)))


def _scores(spec: Estimator, inputs: EstimatorInputs) -> Tensor:
    """The estimator's scores ``I``; zero for an attribution estimator at ``λ = 0`` (Eq. 8 reads the prior alone, and
    training skips the attribution pass, as here)."""
    if "attributions" in spec.needs and inputs.attributions is None:
        return torch.zeros(inputs.completion_mask.shape, device=inputs.completion_mask.device)
    return spec.scores(inputs).float()


def _components(hybrid: bool, scores: Tensor, completion_mask, attention_mask, sigma_div: float, span: str):
    """``(share I/ΣI, prior P, scores I)`` of the scores on the batch (module docstring)."""
    if not hybrid:  # no span and no prior: the scores' share of the response
        return normalize_weights(scores, completion_mask.bool(), "sum"), torch.zeros_like(scores), scores
    span_mask = completion_mask if span == "response" else attention_mask
    prior = gaussian_prior(span_mask, sigma_div)  # Eq. (7)
    return hybrid_token_weights(scores, span_mask, prior, mix=1.0), prior, scores  # I/ΣI of Eq. (8)


def _forward(model, input_ids, attention_mask, completion_mask, target: str | None) -> tuple[Tensor, Tensor | None]:
    """``(log-probs, attributions)`` of one forward: with the attributions of ``target``, or without a graph (None)."""
    if target is not None:
        logits, attributions = _attributed_forward(model, input_ids, attention_mask, completion_mask, target)
    else:
        logits, attributions = _plain_forward(model, input_ids, attention_mask), None
    return per_token_logps(logits.detach(), input_ids), attributions


def _plain_forward(model, input_ids, attention_mask) -> Tensor:
    """The logits of one forward without a graph, in eval mode (the model's mode is restored afterwards)."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            return model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits
    finally:
        model.train(was_training)


def _attributed_forward(model, input_ids, attention_mask, completion_mask, target: str) -> tuple[Tensor, Tensor]:
    """``(logits, attributions)`` of one forward from detached input embeddings, in eval mode (the model's mode is
    restored afterwards); the attributions ``(2B, L)`` are those of ``target`` (Eqs. 5–6)."""
    spec = attribution_target_spec(target)
    was_training = model.training
    model.eval()
    try:
        embeds = model.get_input_embeddings()(input_ids).detach().requires_grad_(True)  # (2B, L, D)
        with torch.enable_grad():
            logits = model(inputs_embeds=embeds, attention_mask=attention_mask, use_cache=False).logits
            rows = torch.arange(logits.shape[0], device=logits.device)
            inputs = TargetInputs(
                attention_mask,
                completion_mask,
                lambda m: logits[rows, last_token_index(m)],
                lambda: per_token_logps(logits, input_ids),
            )
            attributions = target_attributions(spec.scalar(inputs), embeds, attention_mask, retain_graph=False)
    finally:
        model.train(was_training)
    return logits, attributions
