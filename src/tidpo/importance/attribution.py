"""Gradient attribution of input tokens (arXiv 2505.19653v3, Eqs. 5–6).

``L_target = max_v logits[last, v]`` at the last real token of each row (the response's EOS);
``I_i = ‖∂L_target / ∂e_i‖₁`` for the input embedding ``e_i`` of every token. Rows are independent, so one
``autograd.grad`` of the summed targets gives every row's attribution in a single backward.

Only ``torch.autograd.grad`` with the embeddings as the sole input is used: it never writes a parameter's
``.grad`` (so it is safe in the middle of gradient accumulation) and returns a constant.

The targets are a table (:mod:`tidpo.importance.targets`, one module each). Beyond the paper,
``attribution_target="response_logp"`` replaces the target by the log-probability of the
response's own tokens, ``L_target = Σ_{t ∈ response} log π_θ(x_t | x_<t)`` (:func:`response_logp_target`); Eq. 6
is unchanged. The paper's target is computed at the EOS position from the EOS's own hidden state, so the EOS
embedding takes about half of ``ΣI`` on SmolLM2 (docs/results.md); the response log-prob spreads the target
over every response token.

Two ways to get the graph:
- :func:`embedding_attributions` (fused): the embeddings and logits of the policy's own training forward; the
  graph is retained for the loss backward that follows.
- :func:`separate_attributions`: a fresh forward from detached embeddings (the authors' code; kept for
  comparison and for set-ups where a second backward through the training graph is not possible).
Both give the same numbers when dropout is off.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor


def last_token_index(attention_mask: Tensor) -> Tensor:
    """Index of the last real token of each row (works for right and left padding): ``(B, L) -> (B,)``."""
    positions = torch.arange(attention_mask.shape[1], device=attention_mask.device)
    last = torch.where(attention_mask.bool(), positions, torch.full_like(positions, -1)).max(-1).values
    if (last < 0).any():
        raise ValueError("attribution needs at least one real token in every row; got an all-padding row")
    return last


def attribution_target(logits: Tensor, attention_mask: Tensor) -> Tensor:
    """``Σ_b max_v logits[b, last_b, v]`` (Eq. 5), the scalar whose input gradient gives every row's attribution.

    Args:
        logits: ``(B, L, V)``, or ``(B, V)`` already taken at each row's last real token (a caller that never
            builds full logits computes only these).
        attention_mask: ``(B, L)``.
    """
    if logits.ndim == 2:
        last_logits = logits
    else:
        rows = torch.arange(logits.shape[0], device=logits.device)
        last_logits = logits[rows, last_token_index(attention_mask)]  # (B, V)
    return last_logits.max(-1).values.sum()  # Eq. (5)


def response_logp_target(token_logps: Tensor, completion_mask: Tensor) -> Tensor:
    """``Σ_b Σ_{t ∈ response_b} log π(x_t | x_<t)``: the variant target (rows independent, so one backward).

    Args:
        token_logps: ``(B, L)`` per-token log-probs with their graph (0 or anything off the response).
        completion_mask: ``(B, L)`` response tokens.
    """
    return (token_logps * completion_mask.to(token_logps.dtype)).sum()


def target_attributions(target: Tensor, inputs_embeds: Tensor, attention_mask: Tensor, retain_graph: bool) -> Tensor:
    """Eq. 6 for any scalar ``target`` built from ``inputs_embeds``: ``‖∂target/∂e_i‖₁`` ``(B, L)``."""
    (grad,) = torch.autograd.grad(target, inputs_embeds, retain_graph=retain_graph)
    return gradient_scores(grad, attention_mask)


def embedding_attributions(
    logits: Tensor, inputs_embeds: Tensor, attention_mask: Tensor, retain_graph: bool = True
) -> Tensor:
    """L1 norm of ``∂L_target/∂e_i`` per token, from a graph that links ``inputs_embeds`` to ``logits``.

    Args:
        logits: ``(B, L, V)`` computed from ``inputs_embeds``, or ``(B, V)`` at the last real tokens.
        inputs_embeds: ``(B, L, D)`` the embedding-lookup output fed to the model (leaf or not).
        attention_mask: ``(B, L)``; padding positions get attribution 0.
        retain_graph: keep the graph for a later backward (the fused training step needs it).

    Returns:
        ``(B, L)`` float32, detached, ≥ 0.
    """
    return target_attributions(attribution_target(logits, attention_mask), inputs_embeds, attention_mask, retain_graph)


def gradient_scores(grad: Tensor, mask: Tensor) -> Tensor:
    """Eq. (6): ``‖∂L/∂e_i‖₁`` per token from the embedding gradient ``(B, L, D)``, 0 where ``mask`` is 0:
    ``(B, L)`` float32, detached."""
    return grad.detach().float().abs().sum(-1) * mask.to(torch.float32)


def separate_attributions(
    logits_fn: Callable[[Tensor], Tensor], inputs_embeds: Tensor, attention_mask: Tensor, scalar: bool = False
) -> Tensor:
    """Attribution from a separate forward: ``logits_fn`` maps ``(B, L, D)`` embeddings to ``(B, L, V)`` logits
    (or ``(B, V)`` logits at the last real tokens), or with ``scalar`` straight to the target.

    The embeddings are detached first, so nothing flows back into the training graph.
    """
    embeds = inputs_embeds.detach().requires_grad_(True)
    with torch.enable_grad():
        out = logits_fn(embeds)
        if scalar:
            return target_attributions(out, embeds, attention_mask, retain_graph=False)
        return embedding_attributions(out, embeds, attention_mask, retain_graph=False)
