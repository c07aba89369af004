"""The autograd function behind :func:`tidpo.lm_head.head_token_stats`: its forward and backward over chunks of
``N`` rows of hidden states, each chunk's ``(rows, V)`` logits living only in two scratch buffers (A and B below,
reused from chunk to chunk and, with a :class:`~tidpo.lm_head.HeadWorkspace`, from call to call). The gradients
are the ones :mod:`tidpo.lm_head`'s docstring derives.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor

if TYPE_CHECKING:
    from tidpo.lm_head import HeadWorkspace


def stat_dtype(hidden: Tensor) -> torch.dtype:
    """fp32, or fp64 for fp64 inputs (bf16/fp16 logits are upcast, as the plain route does)."""
    return torch.promote_types(hidden.dtype, torch.float32)


def matmul_dtype(weight: Tensor) -> torch.dtype:
    """The dtype the model's own head would multiply in: autocast's while autocast is on for the weight's device
    (a bf16 product even with fp32 weights), else the weight's. The statistics stay in :func:`stat_dtype`."""
    kind = weight.device.type
    if weight.dtype != torch.float64 and torch.is_autocast_enabled(kind):
        return torch.get_autocast_dtype(kind)
    return weight.dtype


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


@dataclass
class _ForwardRows:
    """Per-row results of :class:`ChunkedHeadFunction`'s forward ``(N,)``, filled chunk by chunk; ``(0,)`` when not
    asked for (no reference, no KL, no summary). ``lse`` and ``ref_lse`` are the log-partition functions."""

    logps: Tensor
    lse: Tensor
    ref_logps: Tensor
    ref_lse: Tensor
    kl: Tensor
    logit_mean: Tensor
    entropy: Tensor
    correct: Tensor
    log_sum_sq: Tensor

    @classmethod
    def empty(cls, n: int, with_ref: bool, with_kl: bool, with_summary: bool, dtype, device) -> _ForwardRows:
        def rows(wanted: bool) -> Tensor:
            return torch.empty(n if wanted else 0, dtype=dtype, device=device)

        return cls(
            logps=rows(True),
            lse=rows(True),
            ref_logps=rows(with_ref),
            ref_lse=rows(with_ref),
            kl=rows(with_kl),
            logit_mean=rows(with_summary),
            entropy=rows(with_summary),
            correct=rows(with_summary),
            log_sum_sq=rows(with_summary),
        )


def _policy_chunk(out: _ForwardRows, rows: slice, hidden, weight, targets, buf_a, buf_b, with_summary) -> Tensor:
    """The policy's log-probs (and summary) of one chunk into ``out``; returns its logits ``z`` (in ``buf_a``)."""
    picked = targets.unsqueeze(-1)
    logits = _logits_into(hidden, weight, buf_a)  # z in A
    top = _row_max(logits)
    shifted = _exp_shifted(logits, top, buf_b)  # exp(z − max) in B
    total = shifted.sum(-1)
    out.lse[rows] = top + total.log()
    out.logps[rows] = logits.gather(-1, picked).squeeze(-1) - out.lse[rows]
    if with_summary:  # H = lse − Σ p z; the mean logit; whether the argmax is the target
        expected = torch.bmm(shifted.unsqueeze(1), logits.unsqueeze(2)).view(-1) / total
        out.entropy[rows] = out.lse[rows] - expected
        out.logit_mean[rows] = logits.mean(-1)
        out.correct[rows] = (logits.argmax(-1) == targets).to(out.correct.dtype)
        squares = torch.bmm(shifted.unsqueeze(1), shifted.unsqueeze(2)).view(-1)  # Σ exp(2(z − max))
        out.log_sum_sq[rows] = squares.log() - 2 * total.log()  # log Σ p² (WPO's weights)
    return logits


def _reference_chunk(out: _ForwardRows, rows: slice, ref_hidden, ref_weight, targets, logits, buf_b, with_kl) -> None:
    """The reference's log-probs (and the KL) of one chunk into ``out``; ``logits`` (the policy's ``z``, in
    buffer A) is overwritten with ``z_ref − z`` when the KL is asked for."""
    picked = targets.unsqueeze(-1)
    ref_logits = _logits_into(ref_hidden, ref_weight, buf_b)  # z_ref in B
    ref_picked = ref_logits.gather(-1, picked).squeeze(-1)
    ref_top = _row_max(ref_logits)
    diff = torch.sub(ref_logits, logits, out=logits) if with_kl else None  # z_ref − z in A
    ref_exp = _exp_shifted(ref_logits, ref_top, ref_logits)  # exp(z_ref − max) in B
    ref_total = ref_exp.sum(-1)
    out.ref_lse[rows] = ref_top + ref_total.log()
    out.ref_logps[rows] = ref_picked - out.ref_lse[rows]
    if with_kl:
        out.kl[rows] = _kl_rows(ref_exp, ref_total, out.ref_lse[rows], diff, out.lse[rows])


def _subtract_reference(g_logits: Tensor, g_kl: Tensor, ref_hidden, ref_weight, ref_lse, ref_buf) -> None:
    """``g_logits −= g_kl · q`` (the reference's probabilities), for the rows whose KL has a gradient only
    (TDPO2: the chosen rows' KL has none)."""
    kl_rows = _active_rows(g_kl)
    if kl_rows is None:
        return
    ref_hidden, ref_lse = ref_hidden[kl_rows], ref_lse[kl_rows]
    q_buf = ref_buf[: ref_hidden.shape[0]]
    q = _exp_shifted(_logits_into(ref_hidden, ref_weight, q_buf), ref_lse, q_buf)
    g_logits[kl_rows].sub_(q.mul_(g_kl[kl_rows].unsqueeze(-1)))


def _add_product(total: Tensor | None, a: Tensor, b: Tensor, dtype: torch.dtype) -> Tensor:
    """``total + a @ b`` in ``dtype``: in place (one ``addmm_``) when the product is already in it, else the
    lower-precision product (a GPU's fast path) widened and added."""
    if a.dtype == dtype:
        return a @ b if total is None else total.addmm_(a, b)
    part = (a @ b).to(dtype)
    return part if total is None else total.add_(part)


class ChunkedHeadFunction(torch.autograd.Function):
    """Log-probs, reference log-probs, the KL and the summary of ``N`` rows (see :func:`tidpo.lm_head.head_token_stats`
    for the arguments); gradients flow to the policy's hidden states and head weight only."""

    @staticmethod
    def forward(ctx, hidden, weight, targets, ref_hidden, ref_weight, with_kl, chunk, workspace, with_summary):
        with_ref = ref_hidden is not None
        n, dtype, device = hidden.shape[0], stat_dtype(hidden), hidden.device
        ctx.mm_dtype = mm = matmul_dtype(weight)
        weight_mm, ref_weight_mm = weight.to(mm), ref_weight.to(mm) if with_ref else None
        out = _ForwardRows.empty(n, with_ref, with_kl, with_summary, dtype, device)
        buf_a, buf_b = _buffers(workspace, min(chunk, n), weight.shape[0], dtype, device)
        for start in range(0, n, chunk):
            rows = slice(start, start + chunk)
            k = hidden[rows].shape[0]
            logits = _policy_chunk(
                out, rows, hidden[rows], weight_mm, targets[rows], buf_a[:k], buf_b[:k], with_summary
            )
            if with_ref:
                _reference_chunk(out, rows, ref_hidden[rows], ref_weight_mm, targets[rows], logits, buf_b[:k], with_kl)
        ctx.chunk, ctx.workspace = chunk, workspace
        ctx.set_materialize_grads(False)  # an unused output (e.g. the KL in DPO mode) then costs no backward work
        saved_ref = (ref_hidden, ref_weight, out.ref_lse) if with_kl else ()
        ctx.save_for_backward(hidden, weight, targets, out.lse, *saved_ref)
        ctx.mark_non_differentiable(out.ref_logps, out.logit_mean, out.entropy, out.correct, out.log_sum_sq)
        return out.logps, out.ref_logps, out.kl, out.logit_mean, out.entropy, out.correct, out.log_sum_sq

    @staticmethod
    def backward(ctx, grad_logps, _grad_ref_logps, grad_kl, *_grad_summary):
        hidden, weight, targets, lse, *ref = ctx.saved_tensors
        need_hidden, need_weight = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        use_kl = bool(ref) and grad_kl is not None
        nothing = (None,) * 9
        if grad_logps is None and not use_kl:
            return nothing
        n, dtype, device = hidden.shape[0], stat_dtype(hidden), hidden.device
        buf, ref_buf = _buffers(ctx.workspace, min(ctx.chunk, n), weight.shape[0], dtype, device)
        mm = ctx.mm_dtype  # the forward's product dtype (the backward runs outside autocast)
        weight_mm, ref_weight_mm = weight.to(mm), ref[1].to(mm) if ref else None
        grad_hidden = torch.empty_like(hidden) if need_hidden else None
        grad_weight = None
        for start in range(0, n, ctx.chunk):
            rows = slice(start, start + ctx.chunk)
            k = hidden[rows].shape[0]
            g_logp = grad_logps[rows].to(dtype) if grad_logps is not None else lse.new_zeros(k)
            g_kl = grad_kl[rows].to(dtype) if use_kl else torch.zeros_like(g_logp)
            # ∂/∂z = g_logp (onehot(y) − p) + g_kl (p − q), built in place in the buffer that holds p
            g_logits = _exp_shifted(_logits_into(hidden[rows], weight_mm, buf[:k]), lse[rows], buf[:k])
            g_logits.mul_((g_kl - g_logp).unsqueeze(-1))
            g_logits.scatter_add_(-1, targets[rows].unsqueeze(-1), g_logp.unsqueeze(-1))
            if use_kl:
                _subtract_reference(g_logits, g_kl, ref[0][rows], ref_weight_mm, ref[2][rows], ref_buf)
            g_mm = g_logits.to(mm)  # the products run in the forward's dtype, as the plain head's backward does
            if need_hidden:
                grad_hidden[rows] = (g_mm @ weight_mm).to(hidden.dtype)
            if need_weight:  # summed over chunks in the statistics' dtype
                grad_weight = _add_product(grad_weight, g_mm.T, hidden[rows].to(mm), dtype)
        if need_weight:
            grad_weight = grad_weight.to(weight.dtype)
        return grad_hidden, grad_weight, *nothing[2:]
