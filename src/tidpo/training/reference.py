"""The frozen reference policy π_ref: an explicit model, a frozen copy of the policy, or the policy with its
LoRA/PEFT adapters disabled (no copy at all)."""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator

import torch
from torch import nn


def is_peft_model(model: nn.Module) -> bool:
    """True for a ``peft.PeftModel`` (checked without importing peft when it is not loaded)."""
    return hasattr(model, "disable_adapter") and hasattr(model, "peft_config")


def disable_dropout(model: nn.Module) -> None:
    """Set every dropout probability in ``model`` to 0 (``nn.Dropout`` modules and ``attention_dropout`` floats)."""
    for module in model.modules():
        if isinstance(module, nn.Dropout):
            module.p = 0.0
        if isinstance(getattr(module, "attention_dropout", None), float):
            module.attention_dropout = 0.0


def frozen_copy(model: nn.Module) -> nn.Module:
    """A deep copy of ``model`` in eval mode with ``requires_grad`` off everywhere."""
    ref = copy.deepcopy(model)
    ref.eval()
    ref.requires_grad_(False)
    return ref


@contextlib.contextmanager
def reference_model(policy: nn.Module, ref: nn.Module | None) -> Iterator[nn.Module]:
    """Yield the module to call as π_ref, under ``torch.no_grad``.

    ``ref`` is used when given; otherwise ``policy`` must be a PEFT model, whose adapters are disabled for the
    duration (so π_ref is the base model the adapters were added to).
    """
    with torch.no_grad():
        if ref is not None:
            yield ref
            return
        if not is_peft_model(policy):
            raise ValueError("no reference model: pass ref_model, or train a PEFT model (adapters disabled = π_ref)")
        with policy.disable_adapter():
            yield policy
