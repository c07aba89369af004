"""Anchor responses for the triplet loss (SPEC §4): one sample from the current policy per prompt, every step.

Prompts arrive left padded (``prompt_input_ids``/``prompt_attention_mask``) so that one batched, KV-cached
``generate`` call serves the whole batch; ``generate`` derives position ids from the attention mask, so left
padding does not shift positions. When the training forward already ran the prompts (the shared-prompt route),
sampling continues from their keys and values instead (:func:`sample_from_prompt`): no prompt is run again and
the first token's distribution comes from the prompt's last hidden state. Both use transformers' temperature,
top-k and top-p warpers, in ``generate``'s order. The samples are returned as right-padded ``prompt + anchor``
rows in the batch layout the loss code uses, and as the bare anchor tokens. No gradient flows through sampling.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn
from transformers import GenerationConfig, LogitsProcessorList
from transformers.generation import TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

from tidpo.ops import left_align
from tidpo.training.scoring import PromptState, cache_keyword


@dataclass
class AnchorBatch:
    """Right-padded ``prompt + anchor`` rows: ``input_ids``, ``attention_mask``, ``completion_mask``, all (B, L);
    and the anchors alone, ``tokens`` (B, N) with ``token_mask`` (B, N) up to and including the first EOS."""

    input_ids: Tensor
    attention_mask: Tensor
    completion_mask: Tensor
    tokens: Tensor
    token_mask: Tensor


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
    prompt: PromptState | None = None,
) -> AnchorBatch:
    """Sample one anchor per prompt from ``model`` and lay out ``prompt + anchor`` rows, right padded.

    Args:
        model: the current policy (unwrapped; a PEFT model samples with its adapters on).
        prompt_input_ids: ``(B, P)`` left-padded prompts.
        prompt_attention_mask: ``(B, P)``.
        generation_config: sampling settings (``do_sample``, ``top_k``, ``top_p``, ``temperature``,
            ``max_new_tokens``, ``eos_token_id``, ``pad_token_id``).
        prompt: the policy's forward of these prompts (shared-prompt route): sampling continues from it.
    """
    if prompt is None:
        sequences = model.generate(
            input_ids=prompt_input_ids, attention_mask=prompt_attention_mask, generation_config=generation_config
        )
        generated = sequences[:, prompt_input_ids.shape[1] :]  # (B, N)
    else:
        generated = sample_from_prompt(model, prompt, generation_config)
    return _anchor_rows(prompt_input_ids, prompt_attention_mask, generated, generation_config)


def _warpers(config: GenerationConfig) -> LogitsProcessorList:
    """``generate``'s sampling warpers for one sequence per prompt: temperature, then top-k, then top-p."""
    warpers = LogitsProcessorList()
    if config.temperature is not None and config.temperature != 1.0:
        warpers.append(TemperatureLogitsWarper(config.temperature))
    if config.top_k is not None and config.top_k != 0:
        warpers.append(TopKLogitsWarper(top_k=config.top_k, min_tokens_to_keep=1))
    if config.top_p is not None and config.top_p < 1.0:
        warpers.append(TopPLogitsWarper(top_p=config.top_p, min_tokens_to_keep=1))
    return warpers


@torch.no_grad()
def sample_from_prompt(model: nn.Module, prompt: PromptState, config: GenerationConfig) -> Tensor:
    """Sample ``(B, N)`` tokens continuing prompts already run (their keys, values and last hidden state in
    ``prompt``): a KV-cached decode loop, one forward per new token. Rows that have emitted EOS continue with
    the pad token; the loop stops when every row has, or after ``max_new_tokens``. ``do_sample=False`` is
    greedy."""
    prompt = prompt.detached()
    head = model.get_output_embeddings()
    logits = head(prompt.last).float()  # (B, V): the distribution of the first anchor token
    cache, keyword = prompt.dynamic_cache(), cache_keyword(model)
    warpers = _warpers(config) if config.do_sample else LogitsProcessorList()
    mask, rows, start = prompt.mask, prompt.mask.shape[0], prompt.positions(1)
    done = torch.zeros(rows, dtype=torch.bool, device=mask.device)
    tokens = []
    for step in range(config.max_new_tokens):
        sequences = torch.stack(tokens, 1) if tokens else mask.new_zeros(rows, 0)
        scores = warpers(sequences, logits)
        if config.do_sample:
            token = torch.multinomial(torch.softmax(scores, dim=-1), num_samples=1).squeeze(1)
        else:
            token = scores.argmax(-1)
        token = token.masked_fill(done, config.pad_token_id)
        tokens.append(token)
        done |= token == config.eos_token_id
        if done.all() or step + 1 == config.max_new_tokens:
            break
        mask = torch.cat([mask, mask.new_ones(rows, 1)], dim=1)
        out = model(input_ids=token.unsqueeze(1), attention_mask=mask, position_ids=start + step, use_cache=True,
                    **{keyword: cache})  # fmt: skip
        logits = out.logits[:, -1].float()
    return torch.stack(tokens, 1)


def _anchor_rows(
    prompt_input_ids: Tensor, prompt_attention_mask: Tensor, generated: Tensor, config: GenerationConfig
) -> AnchorBatch:
    eos, pad = config.eos_token_id, config.pad_token_id
    gen_mask = _until_first_eos(generated, eos)
    sequences = torch.cat([prompt_input_ids, generated], dim=1)
    keep = torch.cat([prompt_attention_mask.bool(), gen_mask], dim=1)
    is_completion = torch.cat([torch.zeros_like(prompt_attention_mask, dtype=torch.bool), gen_mask], dim=1)
    input_ids, attention_mask = left_align(sequences, keep)
    completion, _ = left_align(is_completion.long(), keep)
    input_ids = input_ids.masked_fill(~attention_mask, pad)
    return AnchorBatch(
        input_ids=input_ids,
        attention_mask=attention_mask.long(),
        completion_mask=completion,
        tokens=generated.masked_fill(~gen_mask, pad),
        token_mask=gen_mask.long(),
    )
