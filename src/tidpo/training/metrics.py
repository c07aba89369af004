"""Metric bookkeeping: TRL's names for the DPO quantities, plus TI-DPO's own (KL, triplet, weights, timing).

Values are gathered across processes, averaged over the micro-batches since the last log, and handed to
``Trainer.log`` (``eval_``-prefixed at evaluation, as ``Trainer.evaluate`` does for the loss).
"""

from __future__ import annotations

from collections import defaultdict

import torch
from torch import Tensor


class MetricBuffer:
    """Per-mode lists of scalars, averaged and cleared at each log."""

    def __init__(self, gather=None):
        self._gather = gather or (lambda t: t)
        self._values: dict[str, dict[str, list[float]]] = {"train": defaultdict(list), "eval": defaultdict(list)}

    def add(self, mode: str, name: str, value: Tensor | float) -> None:
        """Record a tensor (gathered across processes, then averaged) or a float."""
        if isinstance(value, Tensor):
            value = self._gather(value.detach().float().reshape(-1)).mean().item()
        self._values[mode][name].append(float(value))

    def pop(self, mode: str) -> dict[str, float]:
        """Averages since the last call, then clear."""
        out = {name: sum(vals) / len(vals) for name, vals in self._values[mode].items() if vals}
        self._values[mode].clear()
        return out


def effective_token_count(token_weights: Tensor) -> Tensor:
    """``(Σ w)² / Σ w²`` per row: how many tokens the weights effectively spread over (``T`` when uniform)."""
    total = token_weights.sum(-1)
    return total**2 / (token_weights**2).sum(-1).clamp(min=torch.finfo(token_weights.dtype).tiny)
