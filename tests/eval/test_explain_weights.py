"""The explanation's numbers are training's numbers (``token_weights`` on the same collated batch)."""

from __future__ import annotations

import pytest
import torch
from datasets import Dataset
from torch.testing import assert_close

from tidpo.data import PreferenceCollator, tokenize_preference_dataset
from tidpo.eval.explain import explain_pairs, token_texts
from tidpo.importance import separate_attributions, token_weights


def direct_weights(model, tokenizer, dataset, span: str) -> tuple[torch.Tensor, torch.Tensor]:
    """``(weights, completion_mask)`` of the whole dataset as one batch, computed the way training does."""
    rows = tokenize_preference_dataset(dataset, tokenizer, max_length=64).to_list()
    batch = PreferenceCollator(tokenizer.pad_token_id, max_length=64)(rows)
    ids, mask = batch["input_ids"], batch["attention_mask"]
    model.eval()
    attributions = separate_attributions(
        lambda e: model(inputs_embeds=e, attention_mask=mask).logits, model.get_input_embeddings()(ids), mask
    )
    weights = token_weights(
        "hybrid", batch["completion_mask"], attributions=attributions, attention_mask=mask, span=span
    )
    return weights, batch["completion_mask"].bool()


@pytest.mark.parametrize("span", ["response", "sequence"])
def test_weights_equal_token_weights_on_the_same_batch(tiny, pairs, span):
    model, tokenizer = tiny
    expected, response = direct_weights(model, tokenizer, pairs, span)
    explanation = explain_pairs(model, tokenizer, pairs, n=len(pairs), span=span, max_length=64, batch_size=4)
    n = len(pairs)
    for b, pair in enumerate(explanation.pairs):
        assert_close(torch.tensor(pair.chosen.weights), expected[b][response[b]])
        assert_close(torch.tensor(pair.rejected.weights), expected[n + b][response[n + b]])


def test_components_are_distributions_mixed_into_mean_one_weights(tiny, pairs):
    """Span = response: ΣI/ΣI = 1, ΣP = 1, mean w = 1, and w = T·(λ·I/ΣI + (1 − λ)·P) (Eq. 8, ΣW = 1)."""
    model, tokenizer = tiny
    explanation = explain_pairs(model, tokenizer, pairs, n=2, mix=0.7, max_length=64)
    for side in (s for p in explanation.pairs for s in (p.chosen, p.rejected)):
        g, p, w = (torch.tensor(v, dtype=torch.float64) for v in (side.gradient_share, side.prior, side.weights))
        assert side.span_length == side.num_tokens == len(side.attributions) == len(side.logps)
        assert_close(g.sum().item(), 1.0)
        assert_close(p.sum().item(), 1.0)
        assert_close(w.mean().item(), 1.0)
        assert_close(w, side.num_tokens * (0.7 * g + 0.3 * p), rtol=1e-5, atol=1e-5)
        assert all(lp < 0 for lp in side.logps) and side.token_ids[-1] == tokenizer.eos_token_id


def test_sequence_span_components_cover_prompt_and_response(tiny, pairs):
    model, tokenizer = tiny
    side = explain_pairs(model, tokenizer, pairs, n=1, span="sequence", max_length=64).pairs[0].chosen
    assert side.span_length > side.num_tokens
    assert 0 < sum(side.prior) < 1 and 0 < sum(side.gradient_share) < 1
    # the authors' sequence span: mean 1 over prompt + response, the response slice kept as it is
    assert sum(side.weights) / side.num_tokens != pytest.approx(1.0, abs=1e-3)


class ByteTokenizer:
    """Each id is a byte string; decoding joins them and replaces broken UTF-8, like byte-level BPE."""

    pieces = {0: b"Q:", 1: b" caf", 2: "é".encode()[:1], 3: "é".encode()[1:], 4: b"\n", 5: b" ok"}

    def decode(self, ids, **kwargs):
        return b"".join(self.pieces[i] for i in ids).decode("utf-8", errors="replace")


def test_token_texts_keep_whitespace_and_join_split_characters():
    assert token_texts(ByteTokenizer(), [1, 2, 3, 4, 5], context=[0]) == [" caf", "", "é", "\n", " ok"]


def test_token_texts_keep_newlines_with_the_tiny_tokenizer(tiny):
    model, tokenizer = tiny
    rows = Dataset.from_list([{"prompt": "Human: hi \n Assistant:", "chosen": " yes \n ok", "rejected": " no"}])
    side = explain_pairs(model, tokenizer, rows, n=1, max_length=64).pairs[0].chosen
    assert side.tokens == [" yes", " \n", " ok", " <|im_end|>"]


def test_n_pairs_skipping_prompts_that_fill_max_length(tiny, pairs):
    model, tokenizer = tiny
    long_prompt = {
        "prompt": "Human: tell me " + "about cats " * 20 + "\n Assistant:",
        "chosen": " ok",
        "rejected": " no",
    }
    rows = Dataset.from_list([long_prompt, *pairs.to_list()])
    explanation = explain_pairs(model, tokenizer, rows, n=3, max_length=16, batch_size=2)
    assert [pair.row for pair in explanation.pairs] == [1, 2, 3]
    assert len(explain_pairs(model, tokenizer, pairs, n=99, max_length=64).pairs) == len(pairs)
    with pytest.raises(ValueError, match="n must be >= 1"):
        explain_pairs(model, tokenizer, pairs, n=0)


def test_model_mode_is_restored_and_no_parameter_gradient_is_written(tiny, pairs):
    model, tokenizer = tiny
    model.train()
    explain_pairs(model, tokenizer, pairs, n=2, max_length=64)
    assert model.training and all(p.grad is None for p in model.parameters())
    model.eval()
    explain_pairs(model, tokenizer, pairs, n=1, max_length=64)
    assert not model.training
