"""pad_to_multiple_of and activation_offloading change cost only: the first step's metrics and the parameters after
it are the ones without them, on every layout."""

from __future__ import annotations

import contextlib

import pytest
import torch

import tidpo.training.trainer as trainer_module
from tests.tiny import make_model
from tests.training.helpers import assert_same_step, one_sgd_step
from tidpo import TIDPOConfig
from tidpo.training.sequence_options import activation_offload

LAYOUTS = {
    "shared prompt": {"share_prompt": True},
    "whole rows": {"share_prompt": False},
    "packed rows": {"padding_free": True},
}


@pytest.mark.parametrize("layout", LAYOUTS, ids=list(LAYOUTS))
def test_padding_to_a_multiple_changes_shapes_not_numbers(tokenizer, tmp_path, layout):
    plain, plain_shapes = one_sgd_step(tokenizer, tmp_path / "plain", **LAYOUTS[layout])
    padded, padded_shapes = one_sgd_step(tokenizer, tmp_path / "padded", pad_to_multiple_of=16, **LAYOUTS[layout])
    assert padded.routes.layout == plain.routes.layout == layout
    if layout != "packed rows":  # packing drops the padding again; the anchors' tokens are decoded one by one
        assert any(length == 16 for _, length in padded_shapes) and 16 not in [n for _, n in plain_shapes]
    assert_same_step(padded, plain)


def test_offloaded_activations_give_the_same_step(tokenizer, tmp_path, monkeypatch, caplog):
    entered = []

    def recording(enabled, model):
        entered.append(enabled)
        return activation_offload(enabled, model)

    monkeypatch.setattr(trainer_module, "activation_offload", recording)
    plain, _ = one_sgd_step(tokenizer, tmp_path / "plain")
    with caplog.at_level("WARNING", logger="tidpo"):
        offloaded, _ = one_sgd_step(tokenizer, tmp_path / "offloaded", activation_offloading=True)
    assert entered == [False, True]
    assert "offloading only copies" in caplog.text
    assert_same_step(offloaded, plain)


def test_the_offload_context_moves_what_the_backward_saves(tokenizer):
    """Under the context the tensors saved for the backward are packed into CPU memory; the gradients are equal."""
    model = make_model(tokenizer, seed=0)
    ids = torch.randint(0, len(tokenizer), (2, 6))

    def grads(enabled: bool) -> list[torch.Tensor]:
        model.zero_grad()
        context = activation_offload(enabled, model)
        with context:
            model(input_ids=ids).logits.square().mean().backward()
        return context, [p.grad.clone() for p in model.parameters()]

    plain_context, plain = grads(False)
    context, offloaded = grads(True)
    assert isinstance(plain_context, contextlib.nullcontext)
    assert isinstance(context, torch.autograd.graph.save_on_cpu)
    for a, b in zip(plain, offloaded, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize("value", [0, -8, True])
def test_pad_to_multiple_of_must_be_a_positive_count(tmp_path, value):
    with pytest.raises(ValueError, match="pad_to_multiple_of must be a positive number of tokens"):
        TIDPOConfig(output_dir=str(tmp_path), pad_to_multiple_of=value)
