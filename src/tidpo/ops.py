"""Tensor helpers shared by the importance and loss code (torch only).

Convention used everywhere in tidpo: per-token quantities live in the *token frame*, shape ``(B, L)`` aligned with
``input_ids``: entry ``[b, i]`` belongs to token ``i`` (e.g. ``log π(x_i | x_<i)``), so it lines up with
``completion_mask`` and with the token's own input-embedding attribution (docs/method.md §1, "Alignment"). Entry 0 of
every row predicts nothing and is 0.
"""

from __future__ import annotations

import torch
from torch import Tensor


def _to_token_frame(values: Tensor) -> Tensor:
    """(B, L-1) values computed from logits at positions 0..L-2 -> (B, L), placed at positions 1..L-1."""
    return torch.nn.functional.pad(values, (1, 0))


def per_token_logps(logits: Tensor, input_ids: Tensor) -> Tensor:
    """Log-probability of each token under the model, in the token frame.

    Args:
        logits: ``(B, L, V)`` next-token logits (position ``i`` predicts token ``i + 1``).
        input_ids: ``(B, L)`` token ids.

    Returns:
        ``(B, L)`` float32, ``[b, i] = log softmax(logits[b, i - 1])[input_ids[b, i]]``, 0 at ``i = 0``.
    """
    if logits.shape[:2] != input_ids.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and input_ids {tuple(input_ids.shape)} disagree on (B, L)")
    logits = logits[:, :-1].float()  # (B, L-1, V)
    targets = input_ids[:, 1:].unsqueeze(-1)
    picked = torch.gather(logits, -1, targets).squeeze(-1) - torch.logsumexp(logits, dim=-1)
    return _to_token_frame(picked)


def per_token_kl(ref_logits: Tensor, policy_logits: Tensor) -> Tensor:
    """Full-vocabulary ``KL(π_ref(·|x, u_<t) ‖ π_θ(·|x, u_<t))`` at every position, in the token frame
    (docs/method.md §3).

    Args:
        ref_logits: ``(B, L, V)`` reference logits (no gradient expected).
        policy_logits: ``(B, L, V)`` policy logits.

    Returns:
        ``(B, L)`` float32; entry ``i`` is the KL of the distributions that predict token ``i``.
    """
    if ref_logits.shape != policy_logits.shape:
        raise ValueError(f"ref_logits {tuple(ref_logits.shape)} != policy_logits {tuple(policy_logits.shape)}")
    ref_logp = torch.log_softmax(ref_logits[:, :-1].float(), dim=-1)
    pol_logp = torch.log_softmax(policy_logits[:, :-1].float(), dim=-1)
    ref_p = ref_logp.exp()
    # p_ref = 0 terms count 0 (also where both logits are -inf, e.g. a masked vocabulary entry)
    kl = torch.where(ref_p > 0, ref_p * (ref_logp - pol_logp), torch.zeros_like(ref_p)).sum(-1)  # (B, L-1)
    return _to_token_frame(kl)


def masked_sum(values: Tensor, mask: Tensor) -> Tensor:
    """``Σ_t values[b, t] · mask[b, t]`` per row: ``(B, L), (B, L) -> (B,)``."""
    if values.shape != mask.shape:
        raise ValueError(f"values {tuple(values.shape)} and mask {tuple(mask.shape)} differ")
    return (values * mask.to(values.dtype)).sum(-1)


def left_align(values: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """Move each row's masked entries to the front, keeping their order (differentiable in ``values``).

    Used to index response tokens from 0 (response frame) whatever the prompt length.

    Args:
        values: ``(B, L)``.
        mask: ``(B, L)``, bool or 0/1.

    Returns:
        ``(aligned, aligned_mask)``, both ``(B, T)`` with ``T = max_b Σ_t mask[b, t]``.
    """
    mask = mask.bool()
    counts = mask.sum(-1)
    width = int(counts.max().item()) if counts.numel() else 0
    rank = mask.long().cumsum(-1) - 1  # position of each masked entry in its row's response frame
    index = torch.where(mask, rank, torch.full_like(rank, width))  # unmasked entries go to a spill column
    zeros = values.new_zeros(values.shape[0], width + 1)
    aligned = zeros.scatter(1, index, torch.where(mask, values, torch.zeros_like(values)))[:, :width]
    aligned_mask = torch.arange(width, device=mask.device).unsqueeze(0) < counts.unsqueeze(1)
    return aligned, aligned_mask


def move_to_frame(values: Tensor, mask: Tensor, target_mask: Tensor) -> Tensor:
    """Put the masked entries of ``values`` ``(B, L)`` at the masked places of ``target_mask`` ``(B, L')``, in
    order, row by row (0 elsewhere). Each row must have as many entries in both masks."""
    if not torch.equal(mask.bool().sum(-1), target_mask.bool().sum(-1)):
        raise ValueError("move_to_frame: the two masks select different numbers of entries in some row")
    out = values.new_zeros(target_mask.shape)
    out[target_mask.bool()] = values[mask.bool()]
    return out
