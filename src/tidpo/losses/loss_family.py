"""TRL's DPO loss family over token-weighted log-ratios: the chosen losses of :mod:`tidpo.losses.preference`
combined with their weights, with the f-divergence scores (f-DPO), LD-DPO's length weighting and WPO's pair weights.

- f-divergence (``f_divergence_type``): each weighted log-ratio ``u = Σ w ρ`` becomes the score ``f'(e^u)``:
  ``reverse_kl`` ``u``; ``forward_kl`` ``1 − e^{−u}``; ``js_divergence`` ``log 2 + log σ(u)``; ``alpha_divergence``
  ``(e^{(a−1)u} − 1)/(a − 1)`` (``a`` = ``f_alpha_divergence_coef``; ``u`` at ``a`` = 1; the exponent clamped so
  that it stays finite in its dtype).
- LD-DPO (``ld_alpha``): each response token past the pair's shared length (the shorter response's token count)
  has its weight multiplied by ``ld_alpha``; a multiplier on the token weights, so it composes with all of them.
- WPO (``use_weighting``): each pair's losses are multiplied by ``ω_w ω_l``, ``ω = exp(mean_t(log π_θ(y_t) −
  log Σ_v π_θ(v)²))`` over the response, without gradient (the policy's own probabilities; token weights do not
  enter it).
- A list of losses: ``Σ_k λ_k L_k`` per pair (``loss_weights``, default 1 each); the objective then takes its mean.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from tidpo.losses.kl_modes import tdpo_kl_term
from tidpo.losses.loss_type import LossSettings, PairTerms
from tidpo.losses.preference import loss_spec

F_DIVERGENCES = ("reverse_kl", "forward_kl", "js_divergence", "alpha_divergence")
_EXP_LIMIT = {torch.float16: 11.0, torch.bfloat16: 80.0, torch.float32: 80.0, torch.float64: 700.0}


def f_divergence_score(kind: str, alpha: float = 0.5):
    """``u -> f'(e^u)`` of the f-divergence ``kind`` (see the module docstring)."""
    if kind == "reverse_kl" or (kind == "alpha_divergence" and abs(alpha - 1.0) < 1e-6):
        return lambda u: u
    if kind == "forward_kl":
        return lambda u: -torch.expm1(-u)
    if kind == "js_divergence":
        return lambda u: math.log(2) + F.logsigmoid(u)
    if kind == "alpha_divergence":
        return lambda u: _alpha_score(u, alpha)
    raise ValueError(f"f_divergence_type must be one of {F_DIVERGENCES}, got {kind!r}")


def _alpha_score(u: Tensor, alpha: float) -> Tensor:
    wide = torch.promote_types(u.dtype, torch.float32)  # half precision computed in float32, as TRL does
    exponent = ((alpha - 1.0) * u).to(wide).clamp(max=_EXP_LIMIT[u.dtype])
    return (torch.exp(exponent) - 1.0).to(u.dtype) / (alpha - 1.0)


def length_desensitized(weights: Tensor, completion_mask: Tensor, ld_alpha: float | None) -> Tensor:
    """LD-DPO: ``weights`` ``(2B, L)`` (chosen rows first) times ``ld_alpha`` past each pair's shared length."""
    if ld_alpha is None:
        return weights
    position = completion_mask.cumsum(-1) * completion_mask  # 1, 2, ... on the response, 0 elsewhere
    shared = torch.minimum(*completion_mask.sum(-1).chunk(2)).repeat(2).unsqueeze(-1)
    factor = torch.where(position > shared, ld_alpha, 1.0).to(weights.dtype)
    return weights * factor


def wpo_pair_weights(policy_logps: Tensor, log_sum_sq: Tensor, completion_mask: Tensor) -> Tensor:
    """WPO's ``ω_w ω_l`` per pair (no gradient) from ``(2B, L)`` log-probs and ``log Σ_v π_θ(v)²``."""
    with torch.no_grad():
        mask = completion_mask.to(policy_logps.dtype)
        aligned = ((policy_logps - log_sum_sq) * mask).sum(-1) / mask.sum(-1).clamp(min=1)
        chosen, rejected = torch.exp(aligned).chunk(2)
        return chosen * rejected


@dataclass(frozen=True)
class LossFamily:
    """The losses of one run: ``names`` with their ``weights``, the f-divergence, WPO and the TDPO KL term."""

    names: tuple[str, ...] = ("sigmoid",)
    weights: tuple[float, ...] | None = None
    settings: LossSettings = LossSettings(beta=0.1)
    f_divergence_type: str = "reverse_kl"
    f_alpha_divergence_coef: float = 0.5
    use_weighting: bool = False
    kl_mode: str = "none"
    kl_weight: float = 0.0

    def of_step(self, logratio, stats, weights, completion_mask, seq_kl=None):
        """:meth:`__call__` with a step's per-token statistics ``stats`` (``per_token_logps``,
        ``ref_per_token_logps`` and, in ``summary``, ``log_sum_sq``)."""
        log_sum_sq = (stats.summary or {}).get("log_sum_sq")
        args = (stats.per_token_logps, stats.ref_per_token_logps, weights, completion_mask)
        return self(logratio, *args, seq_kl, log_sum_sq)

    def __call__(self, logratio, policy_logps, ref_logps, weights, completion_mask, seq_kl=None, log_sum_sq=None):
        """Per-pair losses ``(B,)``: ``Σ_k λ_k L_k`` (times WPO's pair weights with ``use_weighting``).

        Args:
            logratio: ``(2B,)`` ``Σ_t w_t ρ_t`` (chosen rows first). policy_logps, ref_logps, weights,
                completion_mask: ``(2B, L)``, token frame. seq_kl: the chosen and rejected SeqKL (or None).
            log_sum_sq: ``(2B, L)`` ``log Σ_v π_θ(v)²`` per token (needed with ``use_weighting``).
        """
        kl = tdpo_kl_term(*(seq_kl or (None, None)), self.kl_mode, self.kl_weight)
        score = f_divergence_score(self.f_divergence_type, self.f_alpha_divergence_coef)
        terms = PairTerms(*logratio.chunk(2), score, kl, policy_logps, ref_logps, weights, completion_mask)
        total = None
        for name, weight in zip(self.names, self.weights or (1.0,) * len(self.names), strict=True):
            part = loss_spec(name).per_pair(terms, self.settings)
            part = part if weight == 1.0 else part * weight
            total = part if total is None else total + part
        if self.use_weighting:
            if log_sum_sq is None:
                raise ValueError("use_weighting needs log Σ π_θ² per token (the head's summary)")
            total = total * wpo_pair_weights(policy_logps, log_sum_sq, completion_mask)
        return total
