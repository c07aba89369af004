"""Padding-free rows (``padding_free=True``): a batch's sequences run packed end to end, and every number must be
the one the padded rows give: the layout itself, features and gradients through a packed forward, and a full
TI-DPO step (anchors included) with full fine-tuning and LoRA. A model whose attention would mix packed
sequences is refused before training."""

from __future__ import annotations

import pytest
import torch

from tests.tiny import make_model
from tests.training.helpers import (
    BUILDERS,
    assert_same_step,
    collated_batch,
    config,
    make_trainer,
    one_sgd_step,
    varied_pairs,
)
from tidpo import TIDPOConfig, TIDPOTrainer
from tidpo.training import packing
from tidpo.training.head import ChunkedHead
from tidpo.training.layouts import PackedRows as PackedLayout
from tidpo.training.layouts import PaddedRows
from tidpo.training.packing import RowPacking as PackedRows
from tidpo.training.packing import packing_problem


def test_the_layout_by_hand():
    # lengths 3, 5, 2, 6 in rows of 6; row 1 is left padded. First fit in decreasing length:
    # 6 (row 3) → packed row 0; 5 (row 1) → row 1; 3 (row 0) → row 2; 2 (row 2) → row 2 after row 0's 3.
    mask = torch.tensor(
        [[1, 1, 1, 0, 0, 0], [0, 1, 1, 1, 1, 1], [1, 1, 0, 0, 0, 0], [1, 1, 1, 1, 1, 1]], dtype=torch.long
    )
    packed = PackedRows.from_mask(mask)
    assert packed.packed_shape == (3, 6) and packed.packed_fraction == pytest.approx(0.75)
    assert packed.position_ids.tolist() == [[0, 1, 2, 3, 4, 5], [0, 1, 2, 3, 4, 0], [0, 1, 2, 0, 1, 0]]
    values = torch.arange(1, 25).view(4, 6) * mask  # token t of the padded layout holds t + 1, padding 0
    assert packed.pack(values).tolist() == [[19, 20, 21, 22, 23, 24], [8, 9, 10, 11, 12, 0], [1, 2, 3, 13, 14, 0]]
    assert torch.equal(packed.unpack(packed.pack(values)), values)
    features = torch.randn(4, 6, 3) * mask[..., None]  # trailing dimensions travel along
    assert torch.equal(packed.unpack(packed.pack(features)), features)

    one = PackedRows.from_mask(mask, one_row=True)
    assert one.packed_shape == (1, 16)
    assert one.position_ids.tolist() == [[0, 1, 2, 3, 4, 5, 0, 1, 2, 3, 4, 0, 1, 2, 0, 1]]
    assert torch.equal(one.unpack(one.pack(values)), values)


def test_nothing_to_gain_and_bad_rows():
    assert PackedRows.from_mask(torch.ones(2, 5, dtype=torch.long)) is None  # no padding
    assert PackedRows.from_mask(torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]])) is None  # 3 + 2 > 4: no row saved
    with pytest.raises(ValueError, match="row 1's tokens are not contiguous"):
        PackedRows.from_mask(torch.tensor([[1, 1, 0, 0], [1, 0, 1, 0]]))
    with pytest.raises(ValueError, match="row 0 of the batch has no tokens"):
        PackedRows.from_mask(torch.tensor([[0, 0, 0, 0], [1, 1, 0, 0]]))


@pytest.mark.parametrize(
    ("arch", "attn", "one_row"),
    [("llama", "sdpa", False), ("llama", "eager", False), ("llama", "sdpa", True), ("qwen2-tied", "sdpa", False)],
)
def test_packed_features_stats_and_gradients_equal_padded_rows(tokenizer, monkeypatch, arch, attn, one_row):
    """``one_row`` packs all sequences into one row, the FlashAttention layout, here through SDPA's block mask."""
    monkeypatch.setattr(packing, "is_flash", lambda config: one_row)
    model, ref = BUILDERS[arch](tokenizer, seed=1), BUILDERS[arch](tokenizer, seed=0)
    model.config._attn_implementation = attn
    batch = collated_batch(tokenizer, pairs=varied_pairs)
    ids, mask, cmask = batch["input_ids"], batch["attention_mask"], batch["completion_mask"]
    assert PackedRows.from_mask(mask).packed_shape[0] < ids.shape[0]  # the batch does pack
    shapes = []
    model.model.layers[0].register_forward_hook(lambda module, args, out: shapes.append(tuple(args[0].shape[:2])))

    runs = {}
    for packed in (False, True):
        embeds = model.get_input_embeddings()(ids)
        layout = (PackedLayout if packed else PaddedRows)(ChunkedHead(7))
        features = layout.rows_forward(model, mask, inputs_embeds=embeds)
        with torch.no_grad():
            ref_features = layout.rows_forward(ref, mask, input_ids=ids)
        stats = layout.head.token_stats(features, ref_features, ids, cmask, True)
        model.zero_grad()
        (stats.per_token_logps.sum() + stats.per_token_kl.sum()).backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters()}
        runs[packed] = features.values * mask[..., None], stats, grads
    expected_rows = 1 if one_row else PackedRows.from_mask(mask).packed_shape[0]
    assert shapes[0] == tuple(ids.shape) and shapes[1][0] == expected_rows

    (padded_values, padded_stats, padded_grads), (packed_values, packed_stats, packed_grads) = runs[False], runs[True]
    torch.testing.assert_close(packed_values, padded_values, atol=1e-5, rtol=0)
    for field in ("per_token_logps", "ref_per_token_logps", "per_token_kl"):
        torch.testing.assert_close(getattr(packed_stats, field), getattr(padded_stats, field), atol=1e-5, rtol=0)
    for name, grad in packed_grads.items():
        assert grad.abs().sum() > 0, name
        torch.testing.assert_close(grad, padded_grads[name], atol=1e-5, rtol=0, msg=name)


def _train(tokenizer, tmp_path, packed: bool, lora: bool, **overrides):
    """One step on pairs of varied lengths; returns the trainer and the row count of every policy forward."""
    trainer, shapes = one_sgd_step(
        tokenizer, tmp_path, lora, data=varied_pairs(4), share_prompt=False, padding_free=packed, **overrides
    )
    return trainer, [rows for rows, _ in shapes]


@pytest.mark.parametrize(("lora", "preset"), [(False, "paper"), (True, "paper"), (False, "official")])
def test_a_full_ti_dpo_step_equals_padded_rows(tokenizer, tmp_path, lora, preset):
    """γ = 0.1 with anchors (their left-padded prompt + sample rows are packed too)."""
    (packed, packed_rows), (padded, padded_rows) = (
        _train(tokenizer, tmp_path, flag, lora, preset=preset) for flag in (True, False)
    )
    assert 8 in padded_rows and 8 not in packed_rows  # the 8 rows of the batch never ran padded
    assert (packed.routes.layout, padded.routes.layout) == ("packed rows", "whole rows")
    assert_same_step(packed, padded)


def test_reference_log_probs_precomputed_from_packed_rows_equal_padded_ones(tokenizer, tmp_path, monkeypatch):
    runs = {}
    for flag in (True, False):
        monkeypatch.setenv("TIDPO_CACHE", str(tmp_path / f"cache-{flag}"))  # each run scores its own cache
        runs[flag] = _train(tokenizer, tmp_path, flag, False, precompute_ref_log_probs=True, kl_mode="none",
                            triplet_weight=0.0)  # fmt: skip
    (packed, packed_rows), (padded, padded_rows) = runs[True], runs[False]
    assert 8 in padded_rows and 8 not in packed_rows
    assert_same_step(packed, padded, metrics=("loss", "rewards/chosen", "rewards/margins", "logps/rejected"))


def test_padding_free_turns_the_shared_prompt_off(tokenizer, tmp_path):
    assert make_trainer(tokenizer, tmp_path, share_prompt=True).routes.layout == "shared prompt"
    packed = make_trainer(tokenizer, tmp_path, padding_free=True).routes
    assert packed.layout == "packed rows" and packed.fallbacks == ()  # asked for, not a fallback
    with pytest.raises(ValueError, match="padding_free packs whole rows, while share_prompt=True"):
        TIDPOConfig(output_dir=str(tmp_path), padding_free=True, share_prompt=True)


def test_a_model_that_mixes_packed_sequences_is_refused(tokenizer, tmp_path):
    model = make_model(tokenizer)
    assert packing_problem(model) is None
    forward = model.forward
    # a model that drops position_ids: its positions run on across sequences, so nothing keeps them apart
    model.forward = lambda *args, position_ids=None, **kwargs: forward(*args, **kwargs)
    problem = packing_problem(model)
    assert problem is not None and "attend to each other" in problem
    args = config(tmp_path, padding_free=True)
    with pytest.raises(ValueError, match="padding_free: the policy cannot run packed rows"):
        TIDPOTrainer(model=model, ref_model=make_model(tokenizer), args=args, train_dataset=varied_pairs(2),
                     processing_class=tokenizer)  # fmt: skip
