"""Fixtures of the explain tests: a tiny model and tokenizer (built in code) and a few sentiment pairs."""

from __future__ import annotations

import pytest

from tests.tiny import make_model, make_tokenizer, one_torch_thread
from tests.training.helpers import sentiment_pairs


@pytest.fixture(autouse=True)
def single_thread():
    with one_torch_thread():
        yield


@pytest.fixture(scope="module")
def tiny():
    tokenizer = make_tokenizer()
    return make_model(tokenizer, seed=0), tokenizer


@pytest.fixture(scope="module")
def pairs():
    return sentiment_pairs(4)
