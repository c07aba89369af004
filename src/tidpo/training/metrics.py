"""Metric bookkeeping: TRL's names for the DPO quantities, plus TI-DPO's own (KL, triplet, weights, timing).

Values are gathered across processes, averaged over the micro-batches since the last log, and handed to
``Trainer.log`` (``eval_``-prefixed at evaluation, as ``Trainer.evaluate`` does for the loss).
"""

from __future__ import annotations

import torch
from torch import Tensor


class MetricBuffer:
    """Per-mode running sums of scalars, averaged per element (not per micro-batch) and cleared at each log.

    A tensor's sum stays on its device until :meth:`pop` (one read back to the host per device and log, instead of
    one per metric and micro-batch: on a GPU each read waits for every kernel launched before it). The sums are
    float64, so they equal the host-side sums of float64 ``.item()`` values exactly.
    """

    def __init__(self, gather=None):
        self._gather = gather or (lambda t: t)
        self._values: dict[str, dict[str, list]] = {"train": {}, "eval": {}}

    def add(self, mode: str, name: str, value: Tensor | float) -> None:
        """Record a tensor (gathered across processes; each element counts once) or a float (counts once).

        A tensor's first dimension must be the batch's pairs (``(B, ...)``), or it is a scalar: at evaluation
        ``gather_for_metrics`` drops the padding samples of the last batch along that dimension.
        """
        if isinstance(value, Tensor):
            gathered = self._gather(value.detach().float().reshape(value.shape[0] if value.ndim else 1, -1))
            total, count = gathered.sum().double(), gathered.numel()  # float32 sum, as .item() read it
        else:
            total, count = float(value), 1
        entry = self._values[mode].get(name)
        self._values[mode][name] = [total, count] if entry is None else [entry[0] + total, entry[1] + count]

    def pop(self, mode: str) -> dict[str, float]:
        """Averages since the last call, then clear."""
        entries = {name: entry for name, entry in self._values[mode].items() if entry[1]}
        totals = host_values({name: total for name, (total, _) in entries.items()})
        self._values[mode] = {}
        return {name: totals[name] / count for name, (_, count) in entries.items()}


def host_values(values: dict[str, Tensor | float]) -> dict[str, float]:
    """``values`` as Python floats, the tensors read back with one transfer per device."""
    out = {name: value for name, value in values.items() if not isinstance(value, Tensor)}
    by_device: dict[torch.device, list[str]] = {}
    for name, value in values.items():
        if isinstance(value, Tensor):
            by_device.setdefault(value.device, []).append(name)
    for names in by_device.values():
        out.update(zip(names, torch.stack([values[n].reshape(()) for n in names]).tolist(), strict=True))
    return {name: float(out[name]) for name in values}


def effective_token_count(token_weights: Tensor) -> Tensor:
    """``(Σ w)² / Σ w²`` per row: how many tokens the weights effectively spread over (``T`` when uniform)."""
    total = token_weights.sum(-1)
    return total**2 / (token_weights**2).sum(-1).clamp(min=torch.finfo(token_weights.dtype).tiny)


def record_step(
    log, beta: float, stats, logratio: Tensor, weights: Tensor, completion_mask: Tensor, seq_kl, objective, triplet
) -> None:
    """Log one micro-batch's metrics through ``log(name, value)``: TRL's names for the DPO quantities, then the
    KL, triplet and weight statistics.

    Deviation: ``rewards/*`` are β times the *token-weighted* log-ratio ``Σ_t w_t ρ_t`` that TI-DPO optimises, not
    TRL's unweighted one (they agree when the weights are uniform, e.g. at evaluation without ``eval_importance``).
    """
    chosen_rewards, rejected_rewards = (beta * logratio.detach()).chunk(2)
    log("rewards/chosen", chosen_rewards)
    log("rewards/rejected", rejected_rewards)
    log("rewards/accuracies", (chosen_rewards > rejected_rewards).float())
    log("rewards/margins", chosen_rewards - rejected_rewards)
    sequence_logps = (stats.per_token_logps.detach() * completion_mask).sum(-1)
    log("logps/chosen", sequence_logps.chunk(2)[0])
    log("logps/rejected", sequence_logps.chunk(2)[1])
    if stats.summary is not None:  # the chunked head's by-products (TRL's names)
        _log_summary(log, stats.summary, completion_mask)
    log("loss/base", objective.base_loss)
    if seq_kl is not None:
        log("kl/chosen", seq_kl[0])
        log("kl/rejected", seq_kl[1])
    if triplet is not None:
        log("triplet/loss", triplet.loss)
        log("triplet/dist_pos", triplet.dist_pos)
        log("triplet/dist_neg", triplet.dist_neg)
    _log_weights(log, weights, completion_mask)


def _log_weights(log, weights: Tensor, completion_mask: Tensor) -> None:
    """Largest and smallest response weight, and how many tokens the weights effectively spread over."""
    response = completion_mask.bool()
    effective = effective_token_count(weights)
    rows = {
        "weights/max": weights.max(-1).values,
        "weights/min": weights.masked_fill(~response, float("inf")).min(-1).values,
        "weights/effective_tokens": effective,
        "weights/effective_fraction": effective / response.sum(-1).clamp(min=1),
    }
    for name, value in rows.items():  # (2B,) rows as (B, 2): pairs first, as the metric gathering expects
        log(name, value.view(2, -1).T)


def _log_summary(log, summary: dict[str, Tensor], completion_mask: Tensor) -> None:
    """``logits/chosen`` and ``logits/rejected`` (the mean logit over the vocabulary and the response tokens),
    ``entropy`` (the policy's mean per-token entropy) and ``mean_token_accuracy`` (the share of response tokens that
    are the policy's most likely token), chosen and rejected responses together for the last two."""
    mask = completion_mask.float()
    tokens = mask.sum(-1).clamp(min=1)
    logit_means = ((summary["logit_mean"] * mask).sum(-1) / tokens).chunk(2)
    log("logits/chosen", logit_means[0])
    log("logits/rejected", logit_means[1])
    for name, key in (("entropy", "entropy"), ("mean_token_accuracy", "correct")):
        per_row = (summary[key] * mask).sum(-1) / tokens  # (2B,) as (B, 2): pairs first
        log(name, per_row.view(2, -1).T)


class TokenCounter:
    """``num_tokens``: the tokens of the rows run in training (prompt + response, each response's row), summed over
    every process at each log; a resumed run continues from the count its last log recorded.

    Args:
        gather: ``(n,) tensor -> (n · processes,)`` (``accelerator.gather``).
        device: where the local count is gathered from.
    """

    def __init__(self, gather, device):
        self.gather, self.device = gather, device
        self.since_log: Tensor | int = 0  # this process's tokens since the last log (a tensor: no host sync per step)
        self.total: float | None = None  # the run's count at the last log

    def add(self, attention_mask: Tensor) -> None:
        self.since_log = self.since_log + attention_mask.detach().sum()

    def at_log(self, log_history: list[dict]) -> float:
        """The run's tokens so far, over every process."""
        if self.total is None:
            self.total = next((row["num_tokens"] for row in reversed(log_history) if "num_tokens" in row), 0.0)
        local = torch.as_tensor(self.since_log, dtype=torch.float64, device=self.device)
        self.total += float(self.gather(local.reshape(1)).sum())
        self.since_log = 0
        return self.total
