"""The single-process side of the engine support: per-rank anchor seeds, the head route under sharded
parameters and under DDP's unused-parameter search, the embedding capture hook."""

from __future__ import annotations

import pytest
import torch

from tidpo import TIDPOConfig
from tidpo.training.distributed import AnchorSampling, anchor_seed
from tidpo.training.layouts import captured_embeddings
from tidpo.training.routes import RouteError, resolve_routes


def draw(sampling: AnchorSampling, model=None) -> torch.Tensor:
    with sampling(model):
        return torch.rand(4)


def test_each_rank_draws_its_own_anchors_reproducibly_and_leaves_the_random_state_alone():
    step = {"n": 3}
    rank0, rank1 = (AnchorSampling(0, rank, lambda: step["n"]) for rank in (0, 1))
    before = torch.get_rng_state()
    a0, a1 = draw(rank0), draw(rank1)
    assert torch.equal(torch.get_rng_state(), before)  # dropout etc. see the same stream as without anchors
    assert not torch.equal(a0, a1)
    again = AnchorSampling(0, 0, lambda: step["n"])
    assert torch.equal(draw(again), a0)  # the same (seed, rank, step, draw) -> the same anchors
    assert not torch.equal(draw(again), a0)  # the second draw of a step is a new one
    step["n"] = 4
    assert torch.equal(draw(again), draw(AnchorSampling(0, 0, lambda: 4)))  # the draw count restarts each step
    assert anchor_seed(0, 0, 3, 0) != anchor_seed(1, 0, 3, 0)


def routes(args, model, sharded_by=None):
    return resolve_routes(args, {"policy": model}, lambda: None, sharded_by)


def test_sharded_parameters_move_the_default_head_to_full_logits_and_refuse_an_explicit_chunked_head(tiny_model):
    r = routes(TIDPOConfig(output_dir="x", use_cpu=True), tiny_model, "FSDP2")
    assert r.head == "full logits" and r.layout == "whole rows"
    assert any("FSDP2 shards the output layer's weight" in f for f in r.fallbacks)
    with pytest.raises(RouteError, match="chunked_logits=True cannot be served: FSDP2 shards"):
        routes(TIDPOConfig(output_dir="x", use_cpu=True, chunked_logits=True), tiny_model, "FSDP2")


def test_ddp_unused_parameter_search_with_a_trainable_untied_head_takes_full_logits(tiny_model, monkeypatch):
    assert TIDPOConfig(output_dir="x", use_cpu=True).ddp_find_unused_parameters is False
    args = TIDPOConfig(output_dir="x", use_cpu=True, ddp_find_unused_parameters=True)
    assert routes(args, tiny_model).head == "chunked"  # one process: no DDP, nothing to fear
    monkeypatch.setattr(TIDPOConfig, "world_size", property(lambda self: 2))
    assert routes(args, tiny_model).head == "full logits"
    tiny_model.lm_head.weight.requires_grad_(False)  # a frozen head (LoRA) is not tracked by DDP
    assert routes(args, tiny_model).head == "chunked"


def test_captured_embeddings_are_the_lookup_and_what_the_forward_reads(tiny_model):
    ids = torch.tensor([[4, 5, 6], [7, 8, 9]])
    with captured_embeddings(tiny_model, lambda e: e * 2) as seen:
        doubled = tiny_model(input_ids=ids).logits
    (embeds,) = seen
    torch.testing.assert_close(embeds, 2 * tiny_model.get_input_embeddings()(ids))
    torch.testing.assert_close(doubled, tiny_model(inputs_embeds=embeds).logits)
    assert not tiny_model.get_input_embeddings()._forward_hooks  # removed on exit
