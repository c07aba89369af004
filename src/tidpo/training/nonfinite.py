"""The update guard: a NaN or an Inf never reaches the weights (``on_nonfinite``, docs/reliability.md).

Each micro-batch's steps report what went non-finite (the attributions before Eq. 8, the anchors' logits before a
token is drawn, the loss and the token weights); :class:`UpdateGuard` notes it with the pairs' data rows, and before
the optimiser runs it adds the gradient norm and takes one decision that every process shares (the flag is
all-reduced): apply the update, raise :class:`NonFiniteError` naming the step, the quantities and the rows, or (with
``on_nonfinite="skip"``) drop the update.

An update is dropped by removing every parameter's gradient (``p.grad = None``) after the gradient norm was taken:
torch's optimisers (and transformers' and bitsandbytes') skip a parameter without a gradient entirely, so neither
the weights nor the optimiser's state (moments, step count) move. The learning-rate schedule still steps: it follows
``global_step``. At evaluation a non-finite quantity raises at once.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping

import torch
from torch import Tensor

logger = logging.getLogger("tidpo")


class NonFiniteError(FloatingPointError):
    """A NaN or an Inf in the loss, the token weights, the attributions or the gradient norm (the message says
    which, at which step, and for which rows of the data)."""


def is_nonfinite(value: Tensor) -> Tensor:
    """A 0-d bool tensor: whether ``value`` holds a NaN or an Inf (no host sync)."""
    return ~torch.isfinite(value.detach()).all()


def rows_of(inputs: Mapping) -> str:
    """`` (pairs at rows i, j of the data)``, or "" when the batch does not carry its rows."""
    rows = inputs.get("tidpo_row")
    if rows is None:
        return ""
    return f" (pairs at rows {', '.join(str(int(r)) for r in rows.tolist())} of the data)"


class UpdateGuard:
    """Notes the non-finite quantities of an update's micro-batches and decides, before the optimiser step.

    Args:
        policy: ``on_nonfinite``, ``"raise"`` or ``"skip"``.
        max_skips: ``max_nonfinite_skips``: the updates in a row that may be skipped before the run stops.
        step: returns the optimiser steps taken so far (``trainer.state.global_step``).
        agree: ``flag -> flag`` summed over the processes (identity with one process).
    """

    def __init__(self, policy: str, max_skips: int, step: Callable[[], int], agree: Callable[[Tensor], Tensor]):
        self.policy, self.max_skips, self.step, self.agree = policy, max_skips, step, agree
        self.found: list[str] = []  # what went non-finite in this update's micro-batches
        self.skipped, self.consecutive = 0, 0

    def note(self, mode: str, inputs: Mapping, flags: Mapping[str, Tensor]) -> None:
        """Note (training) or raise (evaluation) the quantities whose ``flags`` (0-d bool tensors) are set."""
        if not flags:
            return
        bad = torch.stack([flag.to(torch.bool).reshape(()) for flag in flags.values()]).tolist()
        if not any(bad):
            return
        found = ", ".join(name for name, b in zip(flags, bad, strict=True) if b) + rows_of(inputs)
        if mode == "eval":
            raise NonFiniteError(f"non-finite {found} at evaluation (step {self.step()})")
        self.found.append(found)

    def check(self, mode: str, inputs: Mapping, **quantities: Tensor | None) -> None:
        """:meth:`note` for tensors: each named one that holds a NaN or an Inf (None is left out)."""
        named = {name: is_nonfinite(value) for name, value in quantities.items() if isinstance(value, Tensor)}
        self.note(mode, inputs, named)

    def before_update(self, grad_norm, parameters) -> None:
        """Decide this update (every process together); a skipped update leaves the parameters without gradients."""
        found, self.found = self.found, []
        norm = None if grad_norm is None else float(grad_norm)
        if norm is not None and not math.isfinite(norm):
            found.append(f"gradient norm ({norm})")
        flag = self.agree(torch.tensor([1.0 if found else 0.0]))
        if not bool(flag.item()):
            self.consecutive = 0
            return
        self._refuse("; ".join(found) if found else "on another process")
        for parameter in parameters:
            parameter.grad = None

    def _refuse(self, what: str) -> None:
        step = self.step() + 1
        if self.policy == "raise":
            raise NonFiniteError(
                f"non-finite values in the update of step {step}: {what}. Nothing was applied. Lower the learning "
                "rate, check those rows, or pass on_nonfinite='skip' to drop such updates"
            )
        self.skipped += 1
        self.consecutive += 1
        if self.consecutive > self.max_skips:
            raise NonFiniteError(
                f"{self.consecutive} updates in a row had non-finite values (the last, step {step}: {what}); "
                f"stopping (max_nonfinite_skips={self.max_skips})"
            )
        logger.warning(f"step {step}: update skipped, non-finite {what} ({self.skipped} skipped so far)")
