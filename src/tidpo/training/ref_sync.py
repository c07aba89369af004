"""TR-DPO's reference updates (``sync_ref_model``): every ``ref_model_sync_steps`` optimizer steps the reference's
weights become ``α · θ + (1 − α) · θ_ref`` (``α`` = ``ref_model_mixup_alpha``; 1 copies the policy)."""

from __future__ import annotations

import torch
from torch import nn
from transformers import TrainerCallback


def sync_problem(policy: nn.Module, ref_model: nn.Module | None, engine: str | None) -> str | None:
    """Why the reference cannot be updated from the policy (None when it can)."""
    if ref_model is None or hasattr(policy, "peft_config"):
        return "the policy is a PEFT model whose reference is its adapters switched off (no weights of its own)"
    if engine is not None:
        return f"the parameters are sharded by {engine}"
    shapes = [p.shape for p in policy.parameters()], [p.shape for p in ref_model.parameters()]
    if shapes[0] != shapes[1]:
        return "the reference's parameters do not match the policy's one for one"
    return None


@torch.no_grad()
def mix_into(reference: nn.Module, policy: nn.Module, alpha: float) -> None:
    """``θ_ref ← α · θ + (1 − α) · θ_ref``, parameter by parameter, in place."""
    for ref_param, param in zip(reference.parameters(), policy.parameters(), strict=True):
        ref_param.mul_(1.0 - alpha).add_(param.to(ref_param.dtype), alpha=alpha)


class RefSyncCallback(TrainerCallback):
    """Updates ``reference`` from the policy at the end of every ``ref_model_sync_steps``-th step."""

    def __init__(self, reference: nn.Module, unwrap):
        self.reference, self.unwrap = reference, unwrap

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if state.global_step % args.ref_model_sync_steps == 0:
            mix_into(self.unwrap(self.reference), self.unwrap(model), args.ref_model_mixup_alpha)
