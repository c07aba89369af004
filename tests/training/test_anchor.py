"""Anchor sampling: one batched, KV-cached generate over left-padded prompts gives the same tokens as each prompt
alone (so positions are right under left padding), laid out as right-padded prompt + anchor rows; sampling from
the prompts' keys and values (the shared-prompt route) gives the same tokens as generate."""

import pytest
import torch
from transformers import GenerationConfig

from tests.tiny import make_model
from tidpo.training.anchors import anchor_batch, sample_anchors
from tidpo.training.decode import sample_from_prompt
from tidpo.training.prompt_cache import prompt_forward


def _greedy(tokenizer, n=5):
    return GenerationConfig(
        do_sample=False, max_new_tokens=n, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id
    )


def _left_padded(tokenizer, texts):
    rows = [tokenizer(t)["input_ids"] for t in texts]
    width = max(map(len, rows))
    ids = torch.tensor([[tokenizer.pad_token_id] * (width - len(r)) + r for r in rows])
    mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows])
    return rows, ids, mask


def test_batched_left_padded_equals_one_by_one(tokenizer):
    model = make_model(tokenizer, seed=3).eval()
    texts = ["Human: tell me about cats \n Assistant:", "hi", "Human: what is the weather today ? \n Assistant:"]
    rows, ids, mask = _left_padded(tokenizer, texts)
    batch = sample_anchors(model, ids, mask, _greedy(tokenizer))
    for b, prompt in enumerate(rows):
        alone = sample_anchors(
            model, torch.tensor([prompt]), torch.ones(1, len(prompt), dtype=torch.long), _greedy(tokenizer)
        )
        n = int(alone.attention_mask.sum())
        assert batch.input_ids[b, :n].tolist() == alone.input_ids[0, :n].tolist()
        assert batch.input_ids[b, : len(prompt)].tolist() == prompt  # right padded: the prompt comes first
        assert batch.completion_mask[b].tolist() == alone.completion_mask[0, : batch.input_ids.shape[1]].tolist() + [
            0
        ] * (batch.input_ids.shape[1] - alone.input_ids.shape[1])


def test_anchor_stops_after_first_eos(tokenizer):
    model = make_model(tokenizer, seed=3).eval()
    config = _greedy(tokenizer)
    config.suppress_tokens = [i for i in range(len(tokenizer)) if i != tokenizer.eos_token_id]  # EOS first
    _, ids, mask = _left_padded(tokenizer, ["hi", "tell me about cats"])
    out = sample_anchors(model, ids, mask, config)
    completions = [out.input_ids[b][out.completion_mask[b].bool()].tolist() for b in range(2)]
    assert completions == [[tokenizer.eos_token_id], [tokenizer.eos_token_id]]
    assert out.attention_mask.sum(-1).tolist() == [2, 5]
    assert out.input_ids[0, 2:].tolist() == [tokenizer.pad_token_id] * (out.input_ids.shape[1] - 2)


def _sampling(tokenizer, do_sample=True, n=8):
    return GenerationConfig(
        do_sample=do_sample, top_k=10, top_p=0.9, temperature=0.8, max_new_tokens=n,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )  # fmt: skip


@pytest.mark.parametrize("do_sample", [True, False])
def test_sampling_from_the_prompts_cache_equals_generate(tokenizer, do_sample):
    """The shared-prompt route continues the training forward's prompt keys and values with its own decode loop
    and transformers' warpers: with the same seed it draws the same tokens as ``generate``."""
    model = make_model(tokenizer, seed=3).eval()
    texts = ["Human: tell me about cats \n Assistant:", "hi", "Human: what is the weather today ? \n Assistant:"]
    _, ids, mask = _left_padded(tokenizer, texts)
    config = _sampling(tokenizer, do_sample)
    torch.manual_seed(0)
    via_generate = sample_anchors(model, ids, mask, config)
    with torch.no_grad():
        prompt = prompt_forward(model, ids, mask)
    torch.manual_seed(0)
    via_cache = anchor_batch(ids, mask, sample_from_prompt(model, prompt, config), config)
    assert via_cache.tokens.shape == (3, 8)
    for field in ("input_ids", "attention_mask", "completion_mask", "tokens", "token_mask"):
        assert torch.equal(getattr(via_cache, field), getattr(via_generate, field)), field


def test_sampling_from_the_prompts_cache_stops_when_every_row_has_ended(tokenizer):
    model = make_model(tokenizer, seed=3).eval()
    head = torch.nn.Linear(model.config.hidden_size, model.config.vocab_size)  # logits = bias: EOS every time
    torch.nn.init.zeros_(head.weight)
    torch.nn.init.zeros_(head.bias)
    head.bias.data[tokenizer.eos_token_id] = 1.0
    model.lm_head = head
    _, ids, mask = _left_padded(tokenizer, ["hi", "tell me about cats"])
    with torch.no_grad():
        prompt = prompt_forward(model, ids, mask)
    config = _sampling(tokenizer, do_sample=False)
    out = anchor_batch(ids, mask, sample_from_prompt(model, prompt, config), config)
    assert out.tokens.tolist() == [[tokenizer.eos_token_id]] * 2  # one step, not max_new_tokens
    assert out.attention_mask.sum(-1).tolist() == [2, 5]
