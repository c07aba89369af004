"""Anchor sampling: one batched, KV-cached generate over left-padded prompts gives the same tokens as each prompt
alone (so positions are right under left padding), laid out as right-padded prompt + anchor rows."""

import torch
from transformers import GenerationConfig

from tests.tiny import make_model
from tidpo.training.anchor import sample_anchors


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
