"""Fixtures of the explain tests: a tiny model and tokenizer (built in code) and a few sentiment pairs."""

from __future__ import annotations

import pytest
import torch

from tests.tiny import make_model, make_tokenizer
from tests.training.helpers import sentiment_pairs


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny models run faster on one thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny():
    tokenizer = make_tokenizer()
    return make_model(tokenizer, seed=0), tokenizer


@pytest.fixture(scope="module")
def pairs():
    return sentiment_pairs(4)
