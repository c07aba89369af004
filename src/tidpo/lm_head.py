"""Per-token log-probs and the per-position KL straight from final hidden states and the LM head, in chunks.

The plain route (:func:`tidpo.ops.per_token_logps`, :func:`tidpo.ops.per_token_kl`) materialises ``(B, L, V)``
logits for every position and keeps fp32 copies of them in the autograd graph. With a 50–150k vocabulary that is
the largest tensor of a DPO step. Here the caller passes only the ``N`` positions it needs (the response tokens)
as rows of hidden states ``(N, D)``; logits exist one chunk of rows at a time, in fp32, and are recomputed in the
backward instead of being stored. Only ``hidden``, the weights and the targets are saved for the backward.

Gradients, for one position with policy probabilities ``p = softmax(z)`` and reference probabilities ``q``:
``∂ log p[y] / ∂z = onehot(y) − p`` and ``∂ KL(q ‖ p) / ∂z = p − q`` (since ``Σ q = 1``); then
``∂/∂h = g_z W`` and ``∂/∂W = g_zᵀ h``. Equal to the plain route (tests compare both, values and gradients).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

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


def _stat_dtype(hidden: Tensor) -> torch.dtype:
    """fp32, or fp64 for fp64 inputs (bf16/fp16 logits are upcast, as the plain route does)."""
    return torch.promote_types(hidden.dtype, torch.float32)


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


def _buffers(workspace: HeadWorkspace | None, rows: int, cols: int, dtype, device) -> tuple[Tensor, Tensor]:
    if workspace is None:
        return tuple(torch.empty(rows, cols, dtype=dtype, device=device) for _ in range(2))
    return tuple(workspace.get(slot, rows, cols, dtype, device) for slot in range(2))


def _logits_into(hidden: Tensor, weight: Tensor, out: Tensor) -> Tensor:
    """``hidden @ weightᵀ`` written into the ``(n, V)`` buffer ``out`` (at least fp32; returned). The matmul runs in
    the weight's dtype, as the model's own head would (hidden states can come out of a bf16 model in fp32, e.g.
    under autocast); only a bf16/fp16 product is widened, never the ``(V, D)`` weight copied."""
    if hidden.dtype != weight.dtype:
        hidden = hidden.to(weight.dtype)
    if hidden.dtype == out.dtype:
        return torch.mm(hidden, weight.T, out=out)
    return out.copy_(hidden @ weight.T)


def _exp_shifted(logits: Tensor, shift: Tensor, out: Tensor) -> Tensor:
    """``exp(logits − shift)`` row-wise into ``out`` (which may be ``logits`` itself)."""
    return torch.sub(logits, shift.unsqueeze(-1), out=out).exp_()


def _row_max(logits: Tensor) -> Tensor:
    """Row maxima, 0 for a row with no finite maximum (an all -inf row then gives lse -inf, not NaN)."""
    top = logits.amax(-1)
    return torch.where(torch.isfinite(top), top, torch.zeros_like(top))


def _kl_rows(ref_exp: Tensor, ref_total: Tensor, ref_lse: Tensor, diff: Tensor, lse: Tensor) -> Tensor:
    """``Σ_v q_v (log q_v − log p_v) = Σ_v q_v (z^ref_v − z_v) − lse^ref + lse`` per row (``Σ q = 1``).

    ``ref_exp`` holds ``exp(z^ref − max)`` (so ``q = ref_exp / ref_total``) and ``diff`` holds ``z^ref − z``.
    Entries with ``q_v = 0`` count 0 (as :func:`tidpo.ops.per_token_kl`): only a ``-inf`` reference logit makes
    ``q_v = 0`` exactly, and it turns its row's dot product into NaN, so only such rows are redone with a mask.
    """
    cross = torch.bmm(ref_exp.unsqueeze(1), diff.unsqueeze(2)).view(-1)  # row-wise dot products
    bad = torch.isnan(cross)
    if bad.any():
        rows = bad.nonzero().view(-1)
        masked = torch.where(ref_exp[rows] > 0, diff[rows], torch.zeros_like(diff[rows]))
        cross[rows] = (ref_exp[rows] * masked).sum(-1)
    return cross / ref_total - ref_lse + lse


def _active_rows(weights: Tensor) -> slice | None:
    """The smallest slice holding every non-zero entry of ``weights`` (None when all are zero)."""
    nonzero = weights.nonzero().view(-1)
    if nonzero.numel() == 0:
        return None
    return slice(int(nonzero[0]), int(nonzero[-1]) + 1)


class _ChunkedHead(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden, weight, targets, ref_hidden, ref_weight, with_kl, chunk, workspace, with_summary):
        with_ref = ref_hidden is not None
        n, dtype, device = hidden.shape[0], _stat_dtype(hidden), hidden.device
        logps, lse = (torch.empty(n, dtype=dtype, device=device) for _ in range(2))
        ref_logps, ref_lse = (torch.empty(n if with_ref else 0, dtype=dtype, device=device) for _ in range(2))
        kl = torch.empty(n if with_kl else 0, dtype=dtype, device=device)
        logit_mean, entropy, correct = (torch.empty(n if with_summary else 0, dtype=dtype, device=device)
                                        for _ in range(3))  # fmt: skip
        buf_a, buf_b = _buffers(workspace, min(chunk, n), weight.shape[0], dtype, device)
        for start in range(0, n, chunk):
            rows = slice(start, start + chunk)
            k = hidden[rows].shape[0]
            picked = targets[rows].unsqueeze(-1)
            logits = _logits_into(hidden[rows], weight, buf_a[:k])  # z in A
            top = _row_max(logits)
            shifted = _exp_shifted(logits, top, buf_b[:k])  # exp(z − max) in B
            total = shifted.sum(-1)
            lse[rows] = top + total.log()
            logps[rows] = logits.gather(-1, picked).squeeze(-1) - lse[rows]
            if with_summary:  # H = lse − Σ p z; the mean logit; whether the argmax is the target
                expected = torch.bmm(shifted.unsqueeze(1), logits.unsqueeze(2)).view(-1) / total
                entropy[rows] = lse[rows] - expected
                logit_mean[rows] = logits.mean(-1)
                correct[rows] = (logits.argmax(-1) == targets[rows]).to(dtype)
            if with_ref:
                ref_logits = _logits_into(ref_hidden[rows], ref_weight, buf_b[:k])  # z_ref in B
                ref_picked = ref_logits.gather(-1, picked).squeeze(-1)
                ref_top = _row_max(ref_logits)
                diff = torch.sub(ref_logits, logits, out=logits) if with_kl else None  # z_ref − z in A
                ref_exp = _exp_shifted(ref_logits, ref_top, ref_logits)  # exp(z_ref − max) in B
                ref_total = ref_exp.sum(-1)
                ref_lse[rows] = ref_top + ref_total.log()
                ref_logps[rows] = ref_picked - ref_lse[rows]
                if with_kl:
                    kl[rows] = _kl_rows(ref_exp, ref_total, ref_lse[rows], diff, lse[rows])
        ctx.chunk, ctx.workspace = chunk, workspace
        ctx.set_materialize_grads(False)  # an unused output (e.g. the KL in DPO mode) then costs no backward work
        ctx.save_for_backward(hidden, weight, targets, lse, *((ref_hidden, ref_weight, ref_lse) if with_kl else ()))
        ctx.mark_non_differentiable(ref_logps, logit_mean, entropy, correct)
        return logps, ref_logps, kl, logit_mean, entropy, correct

    @staticmethod
    def backward(ctx, grad_logps, _grad_ref_logps, grad_kl, *_grad_summary):
        hidden, weight, targets, lse, *ref = ctx.saved_tensors
        need_hidden, need_weight = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        use_kl = bool(ref) and grad_kl is not None
        nothing = (None,) * 9
        if grad_logps is None and not use_kl:
            return nothing
        n, dtype, device = hidden.shape[0], _stat_dtype(hidden), hidden.device
        buf, ref_buf = _buffers(ctx.workspace, min(ctx.chunk, n), weight.shape[0], dtype, device)
        grad_hidden = torch.empty_like(hidden) if need_hidden else None
        grad_weight = None
        for start in range(0, n, ctx.chunk):
            rows = slice(start, start + ctx.chunk)
            k = hidden[rows].shape[0]
            g_logp = grad_logps[rows].to(dtype) if grad_logps is not None else lse.new_zeros(k)
            g_kl = grad_kl[rows].to(dtype) if use_kl else torch.zeros_like(g_logp)
            # ∂/∂z = g_logp (onehot(y) − p) + g_kl (p − q), built in place in the buffer that holds p
            g_logits = _exp_shifted(_logits_into(hidden[rows], weight, buf[:k]), lse[rows], buf[:k])
            g_logits.mul_((g_kl - g_logp).unsqueeze(-1))
            g_logits.scatter_add_(-1, targets[rows].unsqueeze(-1), g_logp.unsqueeze(-1))
            kl_rows = _active_rows(g_kl) if use_kl else None  # TDPO2: the chosen rows' KL has no gradient
            if kl_rows is not None:
                ref_hidden, ref_weight, ref_lse = ref[0][rows][kl_rows], ref[1], ref[2][rows][kl_rows]
                q_buf = ref_buf[: ref_hidden.shape[0]]
                q = _exp_shifted(_logits_into(ref_hidden, ref_weight, q_buf), ref_lse, q_buf)
                g_logits[kl_rows].sub_(q.mul_(g_kl[kl_rows].unsqueeze(-1)))
            if need_hidden:
                grad_hidden[rows] = (g_logits.to(weight.dtype) @ weight).to(hidden.dtype)
            if need_weight:
                h = hidden[rows].to(dtype)
                grad_weight = g_logits.T @ h if grad_weight is None else grad_weight.addmm_(g_logits.T, h)
        if need_weight:
            grad_weight = grad_weight.to(weight.dtype)
        return grad_hidden, grad_weight, *nothing[2:]


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
            the target (``correct``, 0/1): three reductions of each chunk's logits, no extra matmul.
    """
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
    with_kl = with_kl and ref_hidden is not None
    if ref_hidden is not None:
        ref_hidden, ref_weight = ref_hidden.detach(), ref_weight.detach()
    logps, ref_logps, kl, logit_mean, entropy, correct = _ChunkedHead.apply(
        hidden, weight, targets, ref_hidden, ref_weight, with_kl, chunk_size, workspace, with_summary
    )
    summary = {"logit_mean": logit_mean, "entropy": entropy, "correct": correct} if with_summary else None
    return HeadStats(logps, ref_logps if ref_hidden is not None else None, kl if with_kl else None, summary)


@torch.no_grad()
def logits_summary(logits: Tensor, completion_mask: Tensor, input_ids: Tensor, chunk_size: int = DEFAULT_CHUNK):
    """``with_summary``'s three values from full logits ``(B, L, V)``: per response token, in row-major order
    ``(N,)``, computed ``chunk_size`` positions at a time (memory ``O(chunk_size · V)``, no gradient)."""
    where = response_positions(completion_mask).nonzero()
    targets = input_ids[:, 1:][response_positions(completion_mask)]
    parts: dict[str, list[Tensor]] = {"logit_mean": [], "entropy": [], "correct": []}
    for start in range(0, where.shape[0], chunk_size):
        index = where[start : start + chunk_size]
        z = logits[index[:, 0], index[:, 1]].to(_stat_dtype(logits))
        logp = z.log_softmax(-1)
        parts["entropy"].append(-(logp.exp() * logp).nan_to_num(nan=0.0).sum(-1))  # 0 log 0 = 0
        parts["logit_mean"].append(z.mean(-1))
        parts["correct"].append((z.argmax(-1) == targets[start : start + chunk_size]).to(z.dtype))
    dtype = _stat_dtype(logits)
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
