"""The head route: how a forward's output becomes per-token statistics at the response tokens.

Two heads give the same numbers:
- :class:`ChunkedHead` (default): the LM head is bypassed in the forward (its ``forward`` returns its input), so
  the model hands back final hidden states ``(B, L, D)``; log-probs and the KL are then taken at the response
  positions only, in chunks, by :mod:`tidpo.lm_head`. No ``(B, L, V)`` tensor is ever built and prompt positions
  cost nothing.
- :class:`FullLogitsHead`: the model's logits ``(B, L, V)`` and :mod:`tidpo.ops`. The oracle of the chunked head,
  and the route for output layers that are not a plain bias-free linear map (logit soft-capping or scaling after
  the head, a LoRA-wrapped head; :func:`chunked_head_problem` says which).
Either way the statistics are zero off the response tokens.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from tidpo.importance.attribution import last_token_index
from tidpo.lm_head import (
    HeadStats,
    HeadWorkspace,
    gather_predicting,
    head_token_stats,
    logits_summary,
    to_token_frame,
)
from tidpo.ops import per_token_kl, per_token_logps

# config attributes with which a model changes its logits after the LM head
_LOGIT_TRANSFORMS = ("final_logit_softcapping", "logit_scale", "logits_scaling")


def chunked_head_problem(model: nn.Module) -> str | None:
    """Why the chunked head cannot serve ``model`` (None when it can)."""
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
    """One forward's output: hidden states ``(B, L, D)`` with the head ``weight`` (chunked head), or logits
    ``(B, L, V)`` with ``weight=None`` (full logits)."""

    values: Tensor
    weight: Tensor | None = None

    def predicting(self, completion_mask: Tensor) -> Tensor:
        """Rows that predict the response tokens, row-major: ``(N, ·)``."""
        return gather_predicting(self.values, completion_mask)

    def last(self, attention_mask: Tensor) -> Tensor:
        """Each row's values at its last real token: ``(B, ·)``."""
        rows = torch.arange(self.values.shape[0], device=self.values.device)
        return self.values[rows, last_token_index(attention_mask)]


@dataclass
class TokenStats:
    """Token-frame ``(B, L)`` statistics, zero off the response: ``log π_θ`` and ``log π_ref`` of each token, and
    the full-vocabulary ``KL(π_ref ‖ π_θ)`` of the distribution that predicts it (when asked for)."""

    per_token_logps: Tensor
    ref_per_token_logps: Tensor | None
    per_token_kl: Tensor | None
    # summary=True: token frames of the policy's mean logit, entropy, argmax hit and log Σ p² (no gradient)
    summary: dict[str, Tensor] | None = None


class FullLogitsHead:
    """The model's own logits, and :mod:`tidpo.ops` on them."""

    name = "full logits"

    def __init__(self, unwrap: Callable[[nn.Module], nn.Module] = lambda m: m):
        self.unwrap = unwrap

    def forward(self, model: nn.Module, call: Callable[[], Tensor]) -> Features:
        """``call()`` runs ``model`` and returns its ``.logits``."""
        return Features(call())

    def target_logits(self, features: Features, attention_mask: Tensor) -> Tensor:
        """Logits ``(B, V)`` at each row's last real token (the attribution target of Eq. 5)."""
        return features.last(attention_mask)

    def token_stats(
        self,
        policy: Features,
        ref: Features | None,
        input_ids: Tensor,
        completion_mask: Tensor,
        with_kl: bool,
        summary: bool = False,
    ) -> TokenStats:
        """Per-token log-probs of ``input_ids`` under the policy and (when given) the reference, and the KL when
        ``with_kl`` (which needs the reference), at response tokens; with ``summary``, the policy's mean logit,
        entropy and argmax hit per response token (:func:`tidpo.lm_head.logits_summary`, no gradient)."""
        _check_kl(with_kl, ref)
        mask = completion_mask.to(torch.float32)
        logps = per_token_logps(policy.values, input_ids) * mask
        ref_logps = None if ref is None else per_token_logps(ref.values, input_ids) * mask
        kl = per_token_kl(ref.values, policy.values) * mask if with_kl else None
        extra = None
        if summary:
            rows = logits_summary(policy.values, completion_mask, input_ids)
            extra = {key: to_token_frame(value, completion_mask) for key, value in rows.items()}
        return TokenStats(logps, ref_logps, kl, extra)


class ChunkedHead(FullLogitsHead):
    """Final hidden states out of the forward; the head's matmul at response tokens only, in chunks of
    ``chunk_size`` rows (scratch buffers in ``workspace`` when given)."""

    name = "chunked"

    def __init__(self, chunk_size: int, workspace: HeadWorkspace | None = None, unwrap=lambda m: m):
        super().__init__(unwrap)
        self.chunk_size, self.workspace = chunk_size, workspace

    def forward(self, model: nn.Module, call: Callable[[], Tensor]) -> Features:
        with hidden_states_as_output(self.unwrap(model)) as weight:
            hidden = call()
        if hidden.shape[-1] != weight.shape[1]:
            raise RuntimeError(
                f"{type(model).__name__} did not pass its output layer's input through ({hidden.shape[-1]} features, "
                f"head expects {weight.shape[1]}); set chunked_logits=False"
            )
        return Features(hidden, weight)

    def target_logits(self, features: Features, attention_mask: Tensor) -> Tensor:
        return project(features.last(attention_mask), features.weight)

    def token_stats(self, policy, ref, input_ids, completion_mask, with_kl, summary: bool = False) -> TokenStats:
        _check_kl(with_kl, ref)
        targets = input_ids[:, 1:][completion_mask[:, 1:].bool()]
        stats = head_token_stats(
            policy.predicting(completion_mask),
            policy.weight,
            targets,
            None if ref is None else ref.predicting(completion_mask),
            None if ref is None else ref.weight,
            chunk_size=self.chunk_size,
            with_kl=with_kl,
            workspace=self.workspace,
            with_summary=summary,
        )
        return _token_frames(stats, completion_mask)


def _token_frames(stats: HeadStats, completion_mask: Tensor) -> TokenStats:
    """The chunked head's per-response-token rows ``(N,)`` scattered to the token frame ``(B, L)``."""

    def frame(values: Tensor | None) -> Tensor | None:
        return None if values is None else to_token_frame(values, completion_mask)

    logps, ref_logps, kl = (frame(values) for values in (stats.logps, stats.ref_logps, stats.kl))
    extra = None if stats.summary is None else {key: frame(values) for key, values in stats.summary.items()}
    return TokenStats(logps, ref_logps, kl, extra)


def project(hidden: Tensor, weight: Tensor) -> Tensor:
    """``hidden @ weightᵀ`` in the weight's dtype (hidden states may come out of a bf16 model in fp32)."""
    return hidden.to(weight.dtype) @ weight.T


def _check_kl(with_kl: bool, ref: Features | None) -> None:
    if with_kl and ref is None:
        raise ValueError("the KL needs the reference's features")
