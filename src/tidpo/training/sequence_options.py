"""How rows are padded and how their activations are kept, on :class:`tidpo.training.config.TIDPOConfig` (mixed in;
TRL 1.16's ``DPOConfig`` names and defaults). Both change cost only, never a number: padding is masked out of every
sum, and offloaded activations come back bit for bit (tests/training/test_sequence_options.py checks both)."""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field

import torch
from torch import nn

logger = logging.getLogger("tidpo")


@dataclass
class SequenceOptions:
    """The padding and activation-memory fields of :class:`~tidpo.training.config.TIDPOConfig`."""

    truncation_mode: str = field(
        default="keep_start",
        metadata={
            "help": "A row (prompt + response) longer than max_length keeps its first max_length tokens "
            "('keep_start'; pairs whose prompt alone fills max_length are dropped) or its last ('keep_end', as in "
            "TRL: nothing is dropped; the prompt loses its start, row by row, so prompts are not shared).",
            "choices": ["keep_start", "keep_end"],
        },
    )
    pad_to_multiple_of: int | None = field(
        default=None,
        metadata={
            "help": "Pad each batch's rows (and the anchors' prompts) up to a multiple of this many tokens (tensor "
            "cores like multiples of 8). Same numbers: padding is masked."
        },
    )
    activation_offloading: bool = field(
        default=False,
        metadata={
            "help": "Keep the activations saved for the backward in CPU memory (pinned on a GPU) and bring them "
            "back when the backward needs them: less accelerator memory, more transfers. Same numbers. On a CPU it "
            "only copies (a warning says so)."
        },
    )

    def check_sequence_options(self) -> None:
        """One line per option that cannot be honoured, naming it (and the option it clashes with)."""
        if self.truncation_mode not in ("keep_start", "keep_end"):
            raise ValueError(f"truncation_mode must be 'keep_start' or 'keep_end', got {self.truncation_mode!r}")
        if self.truncation_mode == "keep_end":
            self._check_keep_end()
        if self.pad_to_multiple_of is not None and (
            isinstance(self.pad_to_multiple_of, bool) or self.pad_to_multiple_of < 1
        ):
            raise ValueError(
                f"pad_to_multiple_of must be a positive number of tokens or None, got {self.pad_to_multiple_of}"
            )

    def _check_keep_end(self) -> None:
        if self.share_prompt:
            raise ValueError(
                "truncation_mode='keep_end' cuts each row's prompt on its own, so a pair's rows need not share one: "
                "set share_prompt=False (or leave it unset)"
            )
        if self.needs_weight_columns:
            raise ValueError(
                f"truncation_mode='keep_end' with importance={self.importance!r}: the data's per-token weights are "
                "checked against the tokens kept from the start; use truncation_mode='keep_start'"
            )


def activation_offload(enabled: bool, model: nn.Module):
    """The context a training step runs in: ``torch.autograd.graph.save_on_cpu`` when ``enabled`` (every tensor
    saved for the backward is moved to CPU memory when saved and back when used), else a null context."""
    if not enabled:
        return contextlib.nullcontext()
    on_gpu = next(model.parameters()).device.type == "cuda"
    return torch.autograd.graph.save_on_cpu(pin_memory=on_gpu)


def warn_offloading_on_cpu(enabled: bool, model: nn.Module) -> None:
    """One warning when ``activation_offloading`` is asked for a model on the CPU (it saves nothing there)."""
    if enabled and next(model.parameters()).device.type == "cpu":
        logger.warning("activation_offloading: the model is on the CPU, so offloading only copies activations there")
