"""The synthetic inputs of ``benchmarks/speed.py``: randomly initialised models of public shapes, a word-level
tokenizer (one word, one token) and pairs of random words, so that every configuration trains the same thing and
nothing is downloaded."""

from __future__ import annotations

import torch

SHAPES = {  # public configs (SmolLM2, Qwen2.5 largest last; weights random) and a tiny one for CPU tests
    "smollm2-135m": dict(
        arch="llama",
        vocab_size=49152,
        hidden_size=576,
        intermediate_size=1536,
        num_hidden_layers=30,
        num_attention_heads=9,
        num_key_value_heads=3,
        rope_theta=100000.0,
        tie_word_embeddings=True,
    ),
    "qwen2.5-0.5b": dict(
        arch="qwen2",
        vocab_size=151936,
        hidden_size=896,
        intermediate_size=4864,
        num_hidden_layers=24,
        num_attention_heads=14,
        num_key_value_heads=2,
        rope_theta=1000000.0,
        tie_word_embeddings=True,
    ),
    "qwen2.5-1.5b": dict(
        arch="qwen2",
        vocab_size=151936,
        hidden_size=1536,
        intermediate_size=8960,
        num_hidden_layers=28,
        num_attention_heads=12,
        num_key_value_heads=2,
        rope_theta=1000000.0,
        tie_word_embeddings=True,
    ),
    "qwen2.5-3b": dict(
        arch="qwen2",
        vocab_size=151936,
        hidden_size=2048,
        intermediate_size=11008,
        num_hidden_layers=36,
        num_attention_heads=16,
        num_key_value_heads=2,
        rope_theta=1000000.0,
        tie_word_embeddings=True,
    ),
    "qwen2.5-7b": dict(
        arch="qwen2",
        vocab_size=152064,
        hidden_size=3584,
        intermediate_size=18944,
        num_hidden_layers=28,
        num_attention_heads=28,
        num_key_value_heads=4,
        rope_theta=1000000.0,
        tie_word_embeddings=False,
    ),
    "tiny": dict(
        arch="llama",
        vocab_size=512,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        rope_theta=10000.0,
        tie_word_embeddings=True,
    ),
}


def build_tokenizer(vocab_size: int):
    """A word-level tokenizer over ``w0 … w{V-3}`` plus ``<pad>`` and ``<eos>``: one word, one token."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {f"w{i}": i for i in range(vocab_size - 2)} | {"<pad>": vocab_size - 2, "<eos>": vocab_size - 1}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<pad>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>", unk_token="<pad>")


def build_model(shape: str, dtype: torch.dtype, seed: int):
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    spec = dict(SHAPES[shape])
    config_cls, model_cls = {"llama": (LlamaConfig, LlamaForCausalLM), "qwen2": (Qwen2Config, Qwen2ForCausalLM)}[
        spec.pop("arch")
    ]
    config = config_cls(
        **spec,
        max_position_embeddings=8192,
        pad_token_id=spec["vocab_size"] - 2,
        eos_token_id=spec["vocab_size"] - 1,
        bos_token_id=None,
    )
    torch.manual_seed(seed)
    return model_cls(config).to(dtype)


def synthetic_pairs(n: int, prompt_len: int, response_len: int, vocab_size: int, seed: int):
    """``n`` standard-format pairs of random words (prompt ``prompt_len``, responses ``response_len`` tokens)."""
    from datasets import Dataset

    g = torch.Generator().manual_seed(seed)

    def words(k):
        return " ".join(f"w{i}" for i in torch.randint(0, vocab_size - 2, (k,), generator=g).tolist())

    rows = [
        {"prompt": words(prompt_len), "chosen": " " + words(response_len), "rejected": " " + words(response_len)}
        for _ in range(n)
    ]
    return Dataset.from_list(rows)
