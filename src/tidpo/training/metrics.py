"""Metric bookkeeping: TRL's names for the DPO quantities, plus TI-DPO's own (KL, triplet, weights, timing).

Values are gathered across processes, averaged over the micro-batches since the last log, and handed to
``Trainer.log`` (``eval_``-prefixed at evaluation, as ``Trainer.evaluate`` does for the loss).
"""

from __future__ import annotations

from collections import defaultdict

import torch
from torch import Tensor


class MetricBuffer:
    """Per-mode running sums of scalars, averaged per element (not per micro-batch) and cleared at each log."""

    def __init__(self, gather=None):
        self._gather = gather or (lambda t: t)
        self._values: dict[str, dict[str, list[float]]] = {"train": defaultdict(list), "eval": defaultdict(list)}

    def add(self, mode: str, name: str, value: Tensor | float) -> None:
        """Record a tensor (gathered across processes; each element counts once) or a float (counts once)."""
        if isinstance(value, Tensor):
            gathered = self._gather(value.detach().float().reshape(-1))
            total, count = gathered.sum().item(), gathered.numel()
        else:
            total, count = float(value), 1
        entry = self._values[mode][name] or [0.0, 0]
        self._values[mode][name] = [entry[0] + total, entry[1] + count]

    def pop(self, mode: str) -> dict[str, float]:
        """Averages since the last call, then clear."""
        out = {name: total / count for name, (total, count) in self._values[mode].items() if count}
        self._values[mode].clear()
        return out


def effective_token_count(token_weights: Tensor) -> Tensor:
    """``(Σ w)² / Σ w²`` per row: how many tokens the weights effectively spread over (``T`` when uniform)."""
    total = token_weights.sum(-1)
    return total**2 / (token_weights**2).sum(-1).clamp(min=torch.finfo(token_weights.dtype).tiny)
