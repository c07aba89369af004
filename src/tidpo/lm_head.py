"""Per-token log-probs and the per-position KL straight from final hidden states and the LM head, in chunks.

The plain route (:func:`tidpo.ops.per_token_logps`, :func:`tidpo.ops.per_token_kl`) materialises ``(B, L, V)``
logits for every position and keeps fp32 copies of them in the autograd graph. With a 50–150k vocabulary that is
the largest tensor of a DPO step. Here the caller passes only the ``N`` positions it needs (the response tokens)
as rows of hidden states ``(N, D)``; logits exist one chunk of rows at a time, in fp32, and are recomputed in the
backward instead of being stored. Only ``hidden``, the weights and the targets are saved for the backward.

Gradients, for one position with policy probabilities ``p = softmax(z)`` and reference probabilities ``q``:
``∂ log p[y] / ∂z = onehot(y) − p`` and ``∂ KL(q ‖ p) / ∂z = p − q`` (since ``Σ q = 1``); then
``∂/∂h = g_z W`` and ``∂/∂W = g_zᵀ h``. Equal to the plain route (tests compare both, values and gradients).
The autograd function and its chunk kernels are in :mod:`tidpo.lm_head_kernels`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from tidpo.lm_head_kernels import ChunkedHeadFunction, stat_dtype

DEFAULT_CHUNK = 1024


@dataclass
class HeadStats:
    """Per-position results, each ``(N,)`` float32 (float64 for float64 inputs): the policy log-prob of the
    target and, when reference hidden states were given, the reference log-prob (constant) and
    ``KL(π_ref ‖ π_θ)`` over the full vocabulary."""

    logps: Tensor
    ref_logps: Tensor | None = None
    kl: Tensor | None = None
    summary: dict[str, Tensor] | None = None  # with_summary: TRL's per-token diagnostics (constants), see below


class HeadWorkspace:
    """Scratch ``(rows, vocab)`` buffers kept between calls (two slots), so that every step after the first reuses
    the same memory. On a CPU a fresh buffer of this size is a fresh mapping whose page faults cost about as much as
    an elementwise pass over it. Not for concurrent use. Without one, each call allocates its own."""

    def __init__(self) -> None:
        self._buffers: dict[tuple[int, torch.dtype, torch.device], Tensor] = {}

    def get(self, slot: int, rows: int, cols: int, dtype: torch.dtype, device: torch.device) -> Tensor:
        key = (slot, dtype, device)
        buf = self._buffers.get(key)
        if buf is None or buf.shape[0] < rows or buf.shape[1] != cols:
            self._buffers.pop(key, None)  # drop the old one first: never two of them at once
            buf = self._buffers[key] = torch.empty(rows, cols, dtype=dtype, device=device)
        return buf[:rows]


def head_token_stats(
    hidden: Tensor,
    weight: Tensor,
    targets: Tensor,
    ref_hidden: Tensor | None = None,
    ref_weight: Tensor | None = None,
    chunk_size: int = DEFAULT_CHUNK,
    with_kl: bool = True,
    workspace: HeadWorkspace | None = None,
    with_summary: bool = False,
) -> HeadStats:
    """Log-prob of each target (and, with a reference, its log-prob and the KL) from hidden states, in chunks.

    Args:
        hidden: ``(N, D)`` policy final hidden states, one row per predicted token (after the final norm).
        weight: ``(V, D)`` the policy's LM head (a bias-free linear layer, as in Llama, Qwen, Mistral, SmolLM).
        targets: ``(N,)`` the token each row predicts.
        ref_hidden: ``(N, D)`` reference hidden states at the same positions, or None (no gradient flows).
        ref_weight: ``(V, D)`` the reference's LM head (needed with ``ref_hidden``).
        chunk_size: rows per chunk; memory is ``O(chunk_size · V)`` instead of ``O(N · V)``.
        with_kl: compute the KL (needs the reference); off, ``kl`` is None and costs nothing.
        workspace: scratch buffers reused across calls (a trainer keeps one); None allocates per call.
        with_summary: also return, per position and without gradient, the policy's mean logit over the vocabulary
            (``logit_mean``), the entropy of its distribution (``entropy``) and whether its most likely token is
            the target (``correct``, 0/1), and ``log Σ_v p_v²`` (``log_sum_sq``, WPO's): reductions of each chunk's
            logits, no extra matmul.
    """
    _check_head_inputs(hidden, weight, targets, ref_hidden, ref_weight, chunk_size)
    with_ref = ref_hidden is not None
    with_kl = with_kl and with_ref
    ref_hidden, ref_weight = _detached(ref_hidden), _detached(ref_weight)
    outputs = ChunkedHeadFunction.apply(
        hidden, weight, targets, ref_hidden, ref_weight, with_kl, chunk_size, workspace, with_summary
    )
    return _head_stats(*outputs, with_ref=with_ref, with_kl=with_kl, with_summary=with_summary)


def _check_head_inputs(hidden, weight, targets, ref_hidden, ref_weight, chunk_size: int) -> None:
    if hidden.ndim != 2 or targets.shape != hidden.shape[:1] or weight.shape[1] != hidden.shape[1]:
        raise ValueError(
            f"expected hidden (N, D), weight (V, D), targets (N,); got {tuple(hidden.shape)}, "
            f"{tuple(weight.shape)}, {tuple(targets.shape)}"
        )
    if (ref_hidden is None) != (ref_weight is None):
        raise ValueError("ref_hidden and ref_weight go together")
    if ref_hidden is not None and ref_hidden.shape != hidden.shape:
        raise ValueError(f"ref_hidden {tuple(ref_hidden.shape)} != hidden {tuple(hidden.shape)}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")


def _detached(tensor: Tensor | None) -> Tensor | None:
    return None if tensor is None else tensor.detach()


def _head_stats(
    logps, ref_logps, kl, logit_mean, entropy, correct, log_sum_sq, *, with_ref, with_kl, with_summary
) -> HeadStats:
    """:class:`HeadStats` of :class:`~tidpo.lm_head_kernels.ChunkedHeadFunction`'s outputs (None: not asked for)."""
    summary = None
    if with_summary:
        summary = {"logit_mean": logit_mean, "entropy": entropy, "correct": correct, "log_sum_sq": log_sum_sq}
    return HeadStats(logps, ref_logps if with_ref else None, kl if with_kl else None, summary)


@torch.no_grad()
def logits_summary(logits: Tensor, completion_mask: Tensor, input_ids: Tensor, chunk_size: int = DEFAULT_CHUNK):
    """``with_summary``'s four values from full logits ``(B, L, V)``: per response token, in row-major order
    ``(N,)``, computed ``chunk_size`` positions at a time (memory ``O(chunk_size · V)``, no gradient)."""
    where = response_positions(completion_mask).nonzero()
    targets = input_ids[:, 1:][response_positions(completion_mask)]
    parts: dict[str, list[Tensor]] = {"logit_mean": [], "entropy": [], "correct": [], "log_sum_sq": []}
    for start in range(0, where.shape[0], chunk_size):
        index = where[start : start + chunk_size]
        z = logits[index[:, 0], index[:, 1]].to(stat_dtype(logits))
        logp = z.log_softmax(-1)
        parts["entropy"].append(-(logp.exp() * logp).nan_to_num(nan=0.0).sum(-1))  # 0 log 0 = 0
        parts["logit_mean"].append(z.mean(-1))
        parts["correct"].append((z.argmax(-1) == targets[start : start + chunk_size]).to(z.dtype))
        parts["log_sum_sq"].append(torch.logsumexp(2 * logp, -1))
    dtype = stat_dtype(logits)
    return {k: torch.cat(v) if v else logits.new_zeros(0, dtype=dtype) for k, v in parts.items()}


def response_positions(completion_mask: Tensor) -> Tensor:
    """Which hidden states predict a response token: ``(B, L) -> (B, L-1)`` bool, entry ``i`` predicts ``i + 1``."""
    return completion_mask[:, 1:].bool()


def gather_predicting(hidden: Tensor, completion_mask: Tensor) -> Tensor:
    """Rows of ``hidden`` ``(B, L, D)`` that predict response tokens, in row-major order: ``(N, D)``."""
    return hidden[:, :-1][response_positions(completion_mask)]


def to_token_frame(values: Tensor, completion_mask: Tensor) -> Tensor:
    """Scatter ``(N,)`` per-response-token values back to the token frame ``(B, L)`` (0 elsewhere; differentiable)."""
    where = response_positions(completion_mask)
    frame = values.new_zeros(where.shape).masked_scatter(where, values)
    return torch.nn.functional.pad(frame, (1, 0))
