"""Run a causal LM and turn its output into per-token statistics at the response tokens.

Two routes give the same numbers:
- *chunked* (default): the LM head is bypassed in the forward (its ``forward`` returns its input), so the model hands
  back final hidden states ``(B, L, D)``; log-probs and the KL are then taken at the response positions only,
  in chunks, by :mod:`tidpo.lm_head`. No ``(B, L, V)`` tensor is ever built and prompt positions cost nothing.
- *full*: the model's logits ``(B, L, V)`` and :mod:`tidpo.ops`. Used when the output layer is not a plain
  bias-free linear map (logit soft-capping or scaling after the head, a LoRA-wrapped head), or on request.
Either way the statistics are zero off the response tokens.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from tidpo.importance.attribution import last_token_index
from tidpo.lm_head import gather_predicting, head_token_stats, to_token_frame
from tidpo.ops import per_token_kl, per_token_logps

# config attributes with which a model changes its logits after the LM head
_LOGIT_TRANSFORMS = ("final_logit_softcapping", "logit_scale", "logits_scaling")


def chunked_head_problem(model: nn.Module) -> str | None:
    """Why the chunked route cannot serve ``model`` (None when it can)."""
    head = model.get_output_embeddings()
    if type(head) is not nn.Linear:
        return f"its output layer is a {type(head).__name__}, not a plain torch.nn.Linear"
    if head.bias is not None:
        return "its output layer has a bias"
    for name in _LOGIT_TRANSFORMS:
        value = getattr(model.config, name, None)
        if value not in (None, 1, 1.0):
            return f"config.{name} = {value} transforms the logits after the output layer"
    return None


@contextlib.contextmanager
def hidden_states_as_output(model: nn.Module) -> Iterator[Tensor]:
    """While active, ``model(...).logits`` holds the final hidden states; yields the head's weight ``(V, D)``.

    The head's ``forward`` is shadowed by an identity on the instance (a forward hook would still run the
    ``(B, L, V)`` matmul and only then replace its result).
    """
    head = model.get_output_embeddings()
    head.forward = _identity
    try:
        yield head.weight
    finally:
        del head.forward


def _identity(hidden: Tensor) -> Tensor:
    return hidden


@dataclass
class Features:
    """One forward's output: hidden states ``(B, L, D)`` with the head ``weight`` (chunked route), or logits
    ``(B, L, V)`` with ``weight=None`` (full route)."""

    values: Tensor
    weight: Tensor | None = None


@dataclass
class TokenStats:
    """Token-frame ``(B, L)`` statistics, zero off the response: policy and reference log-probs, and the
    full-vocabulary ``KL(π_ref ‖ π_θ)`` of the distribution that predicts each token (when asked for)."""

    logps: Tensor
    ref_logps: Tensor | None
    kl: Tensor | None


def forward_features(model: nn.Module, chunked: bool, **inputs) -> Features:
    """``model(**inputs, use_cache=False)`` as :class:`Features` (grad mode is the caller's)."""
    if not chunked:
        return Features(model(**inputs, use_cache=False).logits)
    with hidden_states_as_output(model) as weight:
        hidden = model(**inputs, use_cache=False).logits
    if hidden.shape[-1] != weight.shape[1]:
        raise RuntimeError(
            f"{type(model).__name__} did not pass its output layer's input through ({hidden.shape[-1]} features, "
            f"head expects {weight.shape[1]}); set chunked_logits=False"
        )
    return Features(hidden, weight)


def last_token_logits(features: Features, attention_mask: Tensor) -> Tensor:
    """Logits ``(B, V)`` at each row's last real token (the attribution target of Eq. 5)."""
    rows = torch.arange(features.values.shape[0], device=features.values.device)
    last = features.values[rows, last_token_index(attention_mask)]  # (B, D) or (B, V)
    return last if features.weight is None else last @ features.weight.T


def token_stats(
    policy: Features,
    ref: Features | None,
    input_ids: Tensor,
    completion_mask: Tensor,
    with_kl: bool,
    chunk_size: int,
) -> TokenStats:
    """Per-token log-probs of ``input_ids`` under the policy and (when given) the reference, and the KL when
    ``with_kl`` (which needs the reference), at response tokens."""
    if with_kl and ref is None:
        raise ValueError("the KL needs the reference's features")
    mask = completion_mask.to(torch.float32)
    if policy.weight is None:
        logps = per_token_logps(policy.values, input_ids) * mask
        ref_logps = None if ref is None else per_token_logps(ref.values, input_ids) * mask
        kl = per_token_kl(ref.values, policy.values) * mask if with_kl else None
        return TokenStats(logps, ref_logps, kl)
    targets = input_ids[:, 1:][completion_mask[:, 1:].bool()]
    stats = head_token_stats(
        gather_predicting(policy.values, completion_mask),
        policy.weight,
        targets,
        None if ref is None else gather_predicting(ref.values, completion_mask),
        None if ref is None else ref.weight,
        chunk_size=chunk_size,
        with_kl=with_kl,
    )
    frame = [
        None if v is None else to_token_frame(v, completion_mask) for v in (stats.logps, stats.ref_logps, stats.kl)
    ]
    return TokenStats(*frame)
