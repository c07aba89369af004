"""Tiny tokenizer and causal LM built in code, shared by the tests (no downloads).

The tokenizer is word-level on whitespace (so token boundaries are predictable), has ChatML special tokens and a
ChatML chat template, and its EOS is ``<|im_end|>`` as in SmolLM2-Instruct.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

SPECIAL = ["<pad>", "<unk>", "<|im_start|>", "<|im_end|>"]
WORDS = (
    "the a an is was good bad great awful movie film story plot actor I you it this that and but very not "
    "loved hated liked fine ok yes no user assistant system Human: Assistant: what why how do does can tell me "
    "about cats dogs are is weather today please thanks sorry help hello hi : . , ! ? \n"
).split(" ")
CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|> {{ m['role'] }} \n {{ m['content'] }} <|im_end|> \n {% endfor %}"
    "{% if add_generation_prompt %}<|im_start|> assistant \n {% endif %}"
)


def make_tokenizer() -> PreTrainedTokenizerFast:
    words = [w for w in dict.fromkeys(WORDS) if w and w.strip()] + ["\n"]
    vocab = {tok: i for i, tok in enumerate(SPECIAL + words)}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split(" ", behavior="removed")
    tok.decoder = decoders.WordPiece(prefix="##")  # joins tokens with spaces
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="<pad>",
        unk_token="<unk>",
        eos_token="<|im_end|>",
        bos_token=None,
        additional_special_tokens=["<|im_start|>"],
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def make_model(tokenizer=None, seed: int = 0, hidden: int = 32, layers: int = 2) -> LlamaForCausalLM:
    tokenizer = tokenizer or make_tokenizer()
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
        tie_word_embeddings=False,
    )
    model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    return model


@contextlib.contextmanager
def one_torch_thread() -> Iterator[None]:
    """Run torch on one thread for the duration: tiny models run faster so, and two threads stall when the other
    core is busy."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
