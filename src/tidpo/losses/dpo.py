"""Token-weighted DPO (arXiv 2505.19653v3, Eqs. 9–12) with the TDPO sequential-KL term (docs/method.md §3).

``Δr = Σ_t w^w_t ρ_t(y_w) − Σ_t w^l_t ρ_t(y_l)`` with ``ρ_t = log π_θ − log π_ref`` per response token;
``z = Δr − α · (SeqKL(x, y_l) − SeqKL(x, y_w))`` and ``L = −log σ(β z)``.

Deviation: the KL term is not in the paper's equations; it is the authors' final setting (TDPO2 form, α = 0.5,
Zeng et al., arXiv 2404.11999). :func:`tidpo.losses.kl_modes.tdpo_kl_term` owns the choice of ``kl_mode`` (a
table, one row per mode):
``tdpo2``: ``α = kl_weight`` and the chosen SeqKL detached (stop-gradient); ``tdpo1``: ``α = 1``, no detach;
``none``: no term (the paper's literal Eq. 12). With all weights 1 and no KL term this is DPO (Eq. 3).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from tidpo.losses.kl_modes import KL_MODES, tdpo_kl_term
from tidpo.ops import masked_sum

__all__ = ["KL_MODES", "tdpo_kl_term"]  # defined in tidpo.losses.kl_modes, named here as before


def weighted_logratio(policy_per_token_logps: Tensor, ref_per_token_logps: Tensor, token_weights: Tensor) -> Tensor:
    """``Σ_t w_t · ρ_t`` per row (Eqs. 9–10); the weights are 0 off the response, so they are the mask too.

    Args:
        policy_per_token_logps: ``(B, L)`` ``log π_θ`` per token (token frame).
        ref_per_token_logps: ``(B, L)`` ``log π_ref`` per token.
        token_weights: ``(B, L)`` ``w_t`` (all 1 on the response and 0 elsewhere gives DPO's log-ratio).

    Returns:
        ``(B,)`` weighted log-ratio.
    """
    rho = policy_per_token_logps - ref_per_token_logps  # ρ_t
    return masked_sum(rho, token_weights)  # Eq. (9)/(10)


def sequence_kl(per_token_kl: Tensor, completion_mask: Tensor) -> Tensor:
    """``SeqKL(x, u) = Σ_t KL(π_ref(·|x, u_<t) ‖ π_θ(·|x, u_<t))`` over the response (unweighted): ``(B,)``."""
    return masked_sum(per_token_kl, completion_mask)


def preference_loss(
    chosen_logratio: Tensor,
    rejected_logratio: Tensor,
    beta: float,
    chosen_kl: Tensor | None = None,
    rejected_kl: Tensor | None = None,
    kl_weight: float = 0.0,
) -> Tensor:
    """``−log σ(β · (Δr − α (SeqKL_l − SeqKL_w)))`` per pair (Eq. 12 with the TDPO term).

    Args:
        chosen_logratio: ``(B,)`` ``Σ_t w^w_t ρ_t(y_w)``.
        rejected_logratio: ``(B,)`` ``Σ_t w^l_t ρ_t(y_l)``.
        beta: ``β``.
        chosen_kl: ``(B,)`` ``SeqKL(x, y_w)``, used as given (pass it detached for TDPO2, or use
            :func:`ti_dpo_base_loss`, which applies the stop-gradient of ``kl_mode``).
        rejected_kl: ``(B,)`` ``SeqKL(x, y_l)``.
        kl_weight: ``α`` (0 = no KL term; then the KL tensors may be omitted).

    Returns:
        ``(B,)`` losses.
    """
    if kl_weight != 0.0 and (chosen_kl is None or rejected_kl is None):
        raise ValueError("kl_weight != 0 needs chosen_kl and rejected_kl")
    return ti_dpo_base_loss(chosen_logratio, rejected_logratio, beta, chosen_kl, rejected_kl, "tdpo1", kl_weight)


def ti_dpo_base_loss(
    chosen_logratio: Tensor,
    rejected_logratio: Tensor,
    beta: float,
    chosen_seq_kl: Tensor | None = None,
    rejected_seq_kl: Tensor | None = None,
    kl_mode: str = "tdpo2",
    kl_weight: float = 0.5,
) -> Tensor:
    """``L_base = −log σ(β · (Δr − KL term))`` per pair: Eq. 12 with the KL term of ``kl_mode`` (docs/method.md §3).

    Returns:
        ``(B,)`` losses.
    """
    delta_r = chosen_logratio - rejected_logratio  # Eq. (11): Δr
    z = delta_r - tdpo_kl_term(chosen_seq_kl, rejected_seq_kl, kl_mode, kl_weight).to(delta_r)  # docs/method.md §3: z
    return -F.logsigmoid(beta * z)  # Eq. (12)
