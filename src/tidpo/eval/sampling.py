"""Sampling completions from a causal LM and scoring them under a model, the two steps of the generation metrics
(:mod:`tidpo.eval.generation`).

:func:`generate_samples` draws ``n`` completions per prompt, batched with left padding, from one seed;
:func:`completion_scores` scores given completions by teacher forcing: their total log-probability and the mean
entropy of the model's distribution along them.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor


@dataclass
class SamplingSettings:
    """How completions are sampled. The defaults (temperature 1, no top-p/top-k) sample the model's own
    distribution, which the KL estimate needs."""

    max_new_tokens: int = 32
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    batch_size: int = 96

    def __post_init__(self) -> None:
        checks = (
            ("max_new_tokens", self.max_new_tokens >= 1, ">= 1"),
            ("temperature", self.temperature > 0 and math.isfinite(self.temperature), "> 0 and finite"),
            ("top_p", 0 < self.top_p <= 1, "in (0, 1]"),
            ("top_k", self.top_k >= 0, ">= 0 (0: off)"),
            ("batch_size", self.batch_size >= 1, ">= 1"),
        )
        for name, ok, rule in checks:
            if not ok:
                raise ValueError(f"sampling setting {name} must be {rule}, got {getattr(self, name)}")

    @property
    def exact(self) -> bool:
        """Samples come from the model's own distribution (temperature 1, no truncation)."""
        return self.temperature == 1.0 and self.top_p == 1.0 and self.top_k == 0


@dataclass
class Sample:
    """One completion: its prompt (and the prompt's index), the completion's token ids up to and including the
    first EOS, its text (special tokens dropped), and the sampling model's own scores of it."""

    prompt_index: int
    prompt: str
    token_ids: list[int]
    text: str
    logp: float = 0.0  # Σ_t log π(y_t | ...) under the model that sampled it
    entropy: float = 0.0  # mean over the completion's tokens of the model's entropy at that step
    reward: float = 0.0
    extra: dict = field(default_factory=dict)


@contextlib.contextmanager
def _left_padded_eval(model, tokenizer):
    side, tokenizer.padding_side = tokenizer.padding_side, "left"
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        tokenizer.padding_side = side
        model.train(was_training)


@torch.no_grad()
def generate_samples(
    model, tokenizer, prompts: Sequence[str], n: int, settings: SamplingSettings, seed: int = 0
) -> list[Sample]:
    """``n`` completions per prompt, prompt-major (``n`` for prompt 0, then prompt 1, ...), batched with left
    padding. ``torch.manual_seed(seed)`` once before the first batch, so a run is reproducible."""
    from tqdm.auto import tqdm

    if n < 1:
        raise ValueError(f"samples per prompt must be >= 1, got {n}")
    if tokenizer.eos_token_id is None:
        raise ValueError("the tokenizer has no EOS token: completions could not end")
    torch.manual_seed(seed)
    flat = [(i, p) for i, p in enumerate(prompts) for _ in range(n)]
    samples: list[Sample] = []
    device = next(model.parameters()).device
    with _left_padded_eval(model, tokenizer):
        for start in tqdm(range(0, len(flat), settings.batch_size), desc="sampling", leave=False):
            chunk = flat[start : start + settings.batch_size]
            batch = tokenizer([p for _, p in chunk], return_tensors="pt", padding=True).to(device)
            out = model.generate(
                **batch,
                do_sample=True,
                max_new_tokens=settings.max_new_tokens,
                temperature=settings.temperature,
                top_p=settings.top_p,
                top_k=settings.top_k,
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=tokenizer.eos_token_id,
            )
            for (index, prompt), row in zip(chunk, out[:, batch["input_ids"].shape[1] :].tolist(), strict=True):
                ids = _until_eos(row, tokenizer.eos_token_id)
                samples.append(Sample(index, prompt, ids, tokenizer.decode(ids, skip_special_tokens=True)))
    return samples


def _until_eos(ids: list[int], eos: int) -> list[int]:
    return ids[: ids.index(eos) + 1] if eos in ids else ids


@torch.no_grad()
def completion_scores(
    model, tokenizer, samples: Sequence[Sample], temperature: float = 1.0, batch_size: int = 32
) -> tuple[list[float], list[float]]:
    """``(Σ_t log p(y_t), mean_t H_t)`` of each sample's completion under ``model`` (teacher forcing, the logits
    divided by ``temperature`` as sampling did). ``H_t`` is the entropy (nats) of the model's distribution at
    completion step ``t``."""
    device = next(model.parameters()).device
    logps: list[float] = []
    entropies: list[float] = []
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(samples), batch_size):
            batch = _forced_batch(tokenizer, samples[start : start + batch_size])
            batch_logps, batch_entropies = _scored_batch(model, batch, temperature, device)
            logps += batch_logps
            entropies += batch_entropies
    finally:
        model.train(was_training)
    for i, (lp, h) in enumerate(zip(logps, entropies, strict=True)):
        if not (math.isfinite(lp) and math.isfinite(h)):
            raise FloatingPointError(f"completion {i}: non-finite log-probability {lp} or entropy {h}")
    return logps, entropies


@dataclass
class _ForcedBatch:
    """Prompt + completion rows, right-padded to ``(b, W)`` on the CPU: token ids, attention mask, and which
    tokens belong to the completion."""

    input_ids: Tensor
    attention: Tensor
    target: Tensor


def _forced_batch(tokenizer, chunk: Sequence[Sample]) -> _ForcedBatch:
    prompt_ids = [tokenizer(s.prompt)["input_ids"] for s in chunk]
    rows = [p + s.token_ids for p, s in zip(prompt_ids, chunk, strict=True)]
    width = max(len(r) for r in rows)
    input_ids = torch.full((len(rows), width), tokenizer.pad_token_id, dtype=torch.long)
    attention = torch.zeros((len(rows), width), dtype=torch.long)
    target = torch.zeros((len(rows), width), dtype=torch.bool)
    for i, (row, p) in enumerate(zip(rows, prompt_ids, strict=True)):
        input_ids[i, : len(row)] = torch.tensor(row)
        attention[i, : len(row)] = 1
        target[i, len(p) : len(row)] = True
    return _ForcedBatch(input_ids, attention, target)


def _scored_batch(model, batch: _ForcedBatch, temperature: float, device) -> tuple[list[float], list[float]]:
    """Each row's completion log-probability (sum) and mean entropy, as :func:`completion_scores` defines them."""
    logits = model(input_ids=batch.input_ids.to(device), attention_mask=batch.attention.to(device)).logits.float()
    logprobs = torch.log_softmax(logits[:, :-1] / temperature, dim=-1)
    mask = batch.target[:, 1:].to(device)
    labels = batch.input_ids[:, 1:].to(device)
    token_logp = logprobs.gather(-1, labels.unsqueeze(-1)).squeeze(-1)
    entropy = -(logprobs.exp() * logprobs).sum(-1)
    logps, entropies = [], []
    for i in range(batch.input_ids.shape[0]):
        m = mask[i]
        count = int(m.sum())
        logps.append(float(token_logp[i][m].sum()))
        entropies.append(float(entropy[i][m].sum()) / count if count else 0.0)
    return logps, entropies
