"""The shared-prompt forward (``share_prompt=True``, the default): each prompt runs once and both responses
continue from its key/value cache. It must give the numbers of whole rows: features, token statistics,
attributions, a full TI-DPO step's metrics and parameters (full fine-tuning and LoRA). Where it cannot apply, the
default falls back to whole rows before training and says why; asking for it there is an error."""

from __future__ import annotations

import logging

import pytest
import torch

from tests.device import cpu_only_default_layout
from tests.tiny import make_model
from tests.training.helpers import (
    BUILDERS,
    assert_same_step,
    collated_batch,
    config,
    make_trainer,
    one_sgd_step,
    sentiment_pairs,
)
from tidpo import TIDPOTrainer
from tidpo.data import PreferenceCollator
from tidpo.importance.attribution import embedding_attributions
from tidpo.training.head import ChunkedHead
from tidpo.training.layouts import PaddedRows
from tidpo.training.prompt_cache import PromptSharing, forward_shared_prompt
from tidpo.training.shared_layout import shared_prompt_attributions


def test_the_batch_splits_into_prompts_and_responses(tokenizer):
    batch = collated_batch(tokenizer)
    sharing = PromptSharing.from_batch(batch)
    assert sharing is not None
    prompt_lengths = batch["prompt_attention_mask"].sum(-1)
    assert len(set(prompt_lengths.tolist())) > 1  # prompts of different lengths: left padding is exercised
    assert torch.equal(sharing.response_mask.sum(-1), batch["completion_mask"].sum(-1))
    row = 5  # the second pair's rejected row
    start = int(prompt_lengths[row % 4])
    length = int(batch["completion_mask"][row].sum())
    assert torch.equal(sharing.response_ids[row, :length], batch["input_ids"][row, start : start + length])
    # and back: response-frame values land on the completion tokens of the full rows
    values = torch.arange(sharing.response_ids.numel(), dtype=torch.float32).view(sharing.response_ids.shape)
    full = sharing.to_full_frame(values * sharing.response_mask)
    assert torch.equal(full[row, start : start + length], values[row, :length])
    assert full[batch["completion_mask"] == 0].abs().sum() == 0


def test_a_batch_that_is_not_prompt_plus_response_is_refused(tokenizer):
    batch = collated_batch(tokenizer)
    assert PromptSharing.from_batch({k: v for k, v in batch.items() if not k.startswith("prompt_")}) is None
    tampered = dict(batch, input_ids=batch["input_ids"].clone())
    tampered["input_ids"][6, 0] += 1  # row 6's prompt no longer equals pair 2's prompt
    assert PromptSharing.from_batch(tampered) is None
    shifted = dict(batch, completion_mask=batch["completion_mask"].roll(1, dims=1))
    assert PromptSharing.from_batch(shifted) is None


def _policy_and_reference(tokenizer, arch, attn):
    """The policy (seed 1, attention ``attn``) and the reference (seed 0) of one architecture."""
    model = BUILDERS[arch](tokenizer, seed=1)
    model.config._attn_implementation = attn
    ref = BUILDERS[arch](tokenizer, seed=0)
    return model, ref


def _token_stats(rows, ref, sharing, ids, mask, cmask, whole, shared):
    """Token statistics of the policy's whole-row and shared-prompt forwards, each against the reference run the
    same way."""
    with torch.no_grad():
        ref_whole = rows.rows_forward(ref, mask, input_ids=ids)
        ref_shared = forward_shared_prompt(ref, sharing)
    return {
        k: rows.head.token_stats(p, r, ids, cmask, True)
        for k, p, r in (("whole", whole, ref_whole), ("shared", shared, ref_shared))
    }


def _parameter_grads(model, stats):
    """Per key of ``stats``: the parameter gradients of a loss over its log-probs and KL."""
    grads = {}
    for key in stats:
        model.zero_grad()
        (stats[key].per_token_logps.sum() + stats[key].per_token_kl.sum()).backward(retain_graph=True)
        grads[key] = {n: p.grad.clone() for n, p in model.named_parameters()}
    return grads


@pytest.mark.parametrize(("arch", "attn"), [("llama", "sdpa"), ("llama", "eager"), ("qwen2-tied", "sdpa")])
def test_features_stats_and_attributions_equal_whole_rows(tokenizer, arch, attn):
    model, ref = _policy_and_reference(tokenizer, arch, attn)
    batch = collated_batch(tokenizer)
    ids, mask, cmask = batch["input_ids"], batch["attention_mask"], batch["completion_mask"]
    sharing = PromptSharing.from_batch(batch)

    rows = PaddedRows(ChunkedHead(7))
    embeds = model.get_input_embeddings()(ids)
    whole = rows.rows_forward(model, mask, inputs_embeds=embeds)
    prompt_embeds, response_embeds = sharing.embed(model.get_input_embeddings())
    shared = forward_shared_prompt(model, sharing, response_embeds, prompt_embeds)
    torch.testing.assert_close(shared.predicting(cmask), whole.predicting(cmask), atol=1e-5, rtol=0)
    torch.testing.assert_close(shared.last(mask), whole.last(mask), atol=1e-5, rtol=0)

    stats = _token_stats(rows, ref, sharing, ids, mask, cmask, whole, shared)
    for field in ("per_token_logps", "ref_per_token_logps", "per_token_kl"):
        torch.testing.assert_close(getattr(stats["shared"], field), getattr(stats["whole"], field), atol=1e-5, rtol=0)

    # the fused attribution, taken at the response embeddings, equals whole rows' at the response tokens; with the
    # prompt's share kept apart per row, it equals whole rows' at every token (the span over the whole sequence)
    whole_attr = embedding_attributions(rows.head.target_logits(whole, mask), embeds, mask, retain_graph=True)
    response_attr = shared_prompt_attributions(shared, sharing, response_embeds)
    sequence_attr = shared_prompt_attributions(shared, sharing, response_embeds, prompt_embeds)
    assert response_attr.abs().sum() > 0 and (sequence_attr - response_attr).abs().sum() > 0
    torch.testing.assert_close(response_attr, whole_attr * cmask, atol=1e-5, rtol=0)
    torch.testing.assert_close(sequence_attr, whole_attr, atol=1e-5, rtol=0)
    prompt_len = int(batch["prompt_attention_mask"][0].sum())
    rows_of_pair = sequence_attr[0, :prompt_len], sequence_attr[4, :prompt_len]  # pair 0: chosen, rejected
    assert not torch.allclose(*rows_of_pair)  # one prompt, two different attributions: they were kept apart

    # and the parameter gradients of a loss over the statistics
    grads = _parameter_grads(model, stats)
    for name, grad in grads["shared"].items():
        torch.testing.assert_close(grad, grads["whole"][name], atol=1e-5, rtol=0, msg=name)


def _train(tokenizer, tmp_path, share: bool, lora: bool, arch: str = "llama", **overrides):
    return one_sgd_step(tokenizer, tmp_path, lora, builder=BUILDERS[arch], share_prompt=share, **overrides)


@pytest.mark.parametrize(("arch", "lora"), [("llama", False), ("llama", True), ("qwen2-tied", False)])
def test_a_full_ti_dpo_step_equals_whole_rows(tokenizer, tmp_path, arch, lora):
    """Paper preset with anchors (γ = 0.1): same logged metrics and same parameters (1e-5)."""
    runs = {share: _train(tokenizer, tmp_path, share, lora, arch) for share in (True, False)}
    (shared, shared_lengths), (whole, whole_lengths) = runs[True], runs[False]
    assert (shared.routes.layout, whole.routes.layout) == ("shared prompt", "whole rows")
    width = collated_batch(tokenizer)["input_ids"].shape  # (8 rows, L): the whole rows of the one batch
    assert tuple(width) in whole_lengths and tuple(width) not in shared_lengths
    prompts = collated_batch(tokenizer)["prompt_input_ids"].shape
    # the prompts ran once in the policy (and once more in the reference when it is the same module, LoRA):
    # the anchors were sampled and scored from their keys and values, not from a second prompt forward
    assert shared_lengths.count(tuple(prompts)) == (2 if lora else 1)
    assert_same_step(shared, whole)


@pytest.mark.parametrize("lora", [False, True])
def test_the_official_preset_shares_too_and_equals_whole_rows(tokenizer, tmp_path, lora):
    """weight_span="sequence" normalises over prompt attributions, which are per row: they are kept apart."""
    runs = {share: _train(tokenizer, tmp_path, share, lora, preset="official") for share in (True, False)}
    (shared, shared_lengths), (whole, _) = runs[True], runs[False]
    assert (
        shared.routes.layout == "shared prompt"
        and tuple(collated_batch(tokenizer)["input_ids"].shape) not in shared_lengths
    )
    assert_same_step(shared, whole)


@cpu_only_default_layout
def test_gradient_checkpointing_falls_back_by_default_and_refuses_when_asked(tokenizer, tmp_path):
    routes = make_trainer(tokenizer, tmp_path, gradient_checkpointing=True).routes
    assert routes.layout == "whole rows"
    assert routes.fallbacks == ("share_prompt: gradient checkpointing turns the key/value cache off",)
    with pytest.raises(
        ValueError, match="share_prompt=True cannot be served: gradient checkpointing.*share_prompt=False"
    ):
        make_trainer(tokenizer, tmp_path, gradient_checkpointing=True, share_prompt=True)


def test_full_logits_and_an_explicit_shared_prompt_are_refused(tokenizer, tmp_path):
    assert make_trainer(tokenizer, tmp_path, chunked_logits=False).routes.layout == "whole rows"
    with pytest.raises(ValueError, match="share_prompt=True cannot be served: it needs the chunked head"):
        make_trainer(tokenizer, tmp_path, chunked_logits=False, share_prompt=True)


def _reorder_prompts(tokenizer):
    def collate(examples):
        batch = PreferenceCollator(tokenizer.pad_token_id)(examples)
        batch["prompt_input_ids"] = batch["prompt_input_ids"].flip(0)  # prompts in another order
        return batch

    return collate


def _with_collator(tokenizer, tmp_path, collate, **overrides):
    args = config(tmp_path, per_device_train_batch_size=4, triplet_weight=0.0, **overrides)
    return TIDPOTrainer(
        model=make_model(tokenizer, seed=1),
        ref_model=make_model(tokenizer),
        args=args,
        train_dataset=sentiment_pairs(4),
        processing_class=tokenizer,
        data_collator=collate,
    )


@cpu_only_default_layout
def test_another_collator_runs_whole_rows_and_says_so_before_training(tokenizer, tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="tidpo"):
        trainer = _with_collator(tokenizer, tmp_path, _reorder_prompts(tokenizer))
    assert trainer.routes.layout == "whole rows"
    assert "share_prompt: the data collator is a function" in caplog.text
    trainer.train()
    assert trainer.routes.layout == "whole rows"


def test_another_collator_with_share_prompt_asked_for_is_probed(tokenizer, tmp_path):
    with pytest.raises(ValueError, match="data collator .* not prompt \\+ response rows"):
        _with_collator(tokenizer, tmp_path, _reorder_prompts(tokenizer), share_prompt=True)
    plain = PreferenceCollator(tokenizer.pad_token_id)
    trainer = _with_collator(tokenizer, tmp_path, lambda rows: plain(rows), share_prompt=True)
    assert trainer.routes.layout == "shared prompt"


@cpu_only_default_layout
def test_a_model_without_a_plain_cache_falls_back(tokenizer, tmp_path, monkeypatch):
    from transformers.cache_utils import DynamicCache

    from tidpo.training import prompt_cache

    model = make_model(tokenizer)
    assert prompt_cache.sharing_problem(model) is None
    assert prompt_cache.cache_problem(model, DynamicCache()) is None
    assert "returned a tuple cache" in prompt_cache.cache_problem(model, ((), ()))
    monkeypatch.setattr(prompt_cache, "cache_problem", lambda model, cache: "it returned a StaticCache cache")
    routes = make_trainer(tokenizer, tmp_path).routes
    assert routes.layout == "whole rows"
    assert routes.fallbacks == ("share_prompt: the policy: it returned a StaticCache cache",)


def test_left_unset_on_a_gpu_it_runs_whole_rows_by_choice_and_true_still_shares(tokenizer, tmp_path, monkeypatch):
    """The GPU default (whole rows, measured faster on an H200) is a choice: no fallback recorded, nothing probed;
    share_prompt=True still serves the shared prompt there, and the CPU default is unchanged."""
    from tidpo.training import routes

    assert make_trainer(tokenizer, tmp_path, triplet_weight=0.0).routes.layout == "shared prompt"
    monkeypatch.setattr(routes, "_on_gpu", lambda policy: True)
    unset = make_trainer(tokenizer, tmp_path, triplet_weight=0.0, gradient_checkpointing=True).routes
    assert unset.layout == "whole rows" and unset.fallbacks == ()  # checkpointing would be a fallback on a CPU
    asked = make_trainer(tokenizer, tmp_path, triplet_weight=0.0, share_prompt=True).routes
    assert asked.layout == "shared prompt" and asked.fallbacks == ()
