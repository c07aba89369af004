"""Anchor responses for the triplet loss (SPEC §4): one sample from the current policy per prompt, every step.

Prompts arrive left padded (``prompt_input_ids``/``prompt_attention_mask``) so that one batched, KV-cached
``generate`` call serves the whole batch; ``generate`` derives position ids from the attention mask, so left
padding does not shift positions. The samples are returned as right-padded ``prompt + anchor`` rows in the
batch layout the loss code uses. No gradient flows through sampling.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn
from transformers import GenerationConfig

from tidpo.ops import left_align


@dataclass
class AnchorBatch:
    """Right-padded ``prompt + anchor`` rows: ``input_ids``, ``attention_mask``, ``completion_mask``, all (B, L)."""

    input_ids: Tensor
    attention_mask: Tensor
    completion_mask: Tensor


def _until_first_eos(generated: Tensor, eos_token_id: int) -> Tensor:
    """Mask of generated tokens up to and including the first EOS of each row: ``(B, N) -> (B, N)`` bool."""
    is_eos = generated == eos_token_id
    eos_before = is_eos.long().cumsum(-1) - is_eos.long()  # EOS strictly before each position
    return eos_before == 0


@torch.no_grad()
def sample_anchors(
    model: nn.Module,
    prompt_input_ids: Tensor,
    prompt_attention_mask: Tensor,
    generation_config: GenerationConfig,
) -> AnchorBatch:
    """Sample one anchor per prompt from ``model`` and lay out ``prompt + anchor`` rows, right padded.

    Args:
        model: the current policy (unwrapped; a PEFT model samples with its adapters on).
        prompt_input_ids: ``(B, P)`` left-padded prompts.
        prompt_attention_mask: ``(B, P)``.
        generation_config: sampling settings (``do_sample``, ``top_k``, ``top_p``, ``temperature``,
            ``max_new_tokens``, ``eos_token_id``, ``pad_token_id``).
    """
    eos, pad = generation_config.eos_token_id, generation_config.pad_token_id
    sequences = model.generate(
        input_ids=prompt_input_ids, attention_mask=prompt_attention_mask, generation_config=generation_config
    )
    generated = sequences[:, prompt_input_ids.shape[1] :]  # (B, N)
    gen_mask = _until_first_eos(generated, eos)
    keep = torch.cat([prompt_attention_mask.bool(), gen_mask], dim=1)
    is_completion = torch.cat([torch.zeros_like(prompt_attention_mask, dtype=torch.bool), gen_mask], dim=1)
    input_ids, attention_mask = left_align(sequences, keep)
    completion, _ = left_align(is_completion.long(), keep)
    input_ids = input_ids.masked_fill(~attention_mask, pad)
    return AnchorBatch(input_ids=input_ids, attention_mask=attention_mask.long(), completion_mask=completion)
