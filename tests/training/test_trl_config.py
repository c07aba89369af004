"""TRL's DPOConfig passed as ``args``: converted to a TIDPOConfig, fields with the same meaning carried over, fields
tidpo cannot honour refused by name, and every DPOConfig field listed in docs/trl.md's table."""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path

import pytest
import torch
from transformers import TrainingArguments

from tests.tiny import make_model
from tests.training.helpers import sentiment_pairs
from tidpo import TIDPOConfig, TIDPOTrainer
from tidpo.training.trl_compat import CARRIED, IGNORED, ONLY_WITH, REQUIRED, from_dpo_config

trl = pytest.importorskip("trl")
DOC = Path(__file__).resolve().parents[2] / "docs" / "trl.md"


def dpo_config(tmp_path, **kwargs):
    base = {"output_dir": str(tmp_path), "use_cpu": True, "report_to": "none", "bf16": False,
            "gradient_checkpointing": False}  # fmt: skip
    return trl.DPOConfig(**{**base, **kwargs})


def test_fields_carry_over(tmp_path):
    dpo = trl.DPOConfig(
        output_dir=str(tmp_path), use_cpu=True, report_to="none", learning_rate=3e-6, beta=0.25, max_length=77,
        per_device_train_batch_size=3, gradient_accumulation_steps=2, max_steps=9, seed=5, padding_free=True,
        model_init_kwargs={"dtype": "float32"}, lr_scheduler_type="cosine",
    )  # fmt: skip
    ours = from_dpo_config(dpo)
    assert isinstance(ours, TIDPOConfig)
    assert (ours.learning_rate, ours.beta, ours.max_length) == (3e-6, 0.25, 77)
    assert (ours.per_device_train_batch_size, ours.gradient_accumulation_steps, ours.max_steps, ours.seed) == (
        3, 2, 9, 5)  # fmt: skip
    assert ours.padding_free and ours.model_init_kwargs == {"dtype": "float32"}
    assert ours.lr_scheduler_type.value == "cosine"
    assert ours.bf16 and ours.gradient_checkpointing  # TRL's own defaults, as the user's DPOConfig holds them
    assert ours.remove_unused_columns is False and ours.ddp_find_unused_parameters is False  # tidpo's own
    assert (ours.preset, ours.importance, ours.triplet_weight) == ("confidence", "confidence", 0.0)  # the default's


def test_overrides_pick_the_method(tmp_path):
    ours = from_dpo_config(dpo_config(tmp_path, beta=0.3), baseline="dpo")
    assert (ours.importance, ours.kl_mode, ours.triplet_weight, ours.beta) == ("uniform", "none", 0.0, 0.3)


@pytest.mark.parametrize(
    ("field", "value"),
    [("pad_token", "<pad>")],  # the loss options and truncation_mode are carried now (tests/trl_compat)
)
def test_fields_tidpo_cannot_honour_are_errors_naming_them(tmp_path, field, value):
    try:
        dpo = dpo_config(tmp_path, **{field: value})
    except ValueError:
        pytest.skip(f"TRL itself refuses {field}={value!r}")
    with pytest.raises(ValueError, match=rf"DPOConfig\.{field}=.*cannot be honoured by tidpo"):
        from_dpo_config(dpo)


def test_speed_only_fields_warn(tmp_path):
    with pytest.warns(UserWarning, match="DPOConfig.precompute_ref_batch_size is ignored"):
        from_dpo_config(dpo_config(tmp_path, precompute_ref_batch_size=8))


def test_padding_truncation_and_offloading_fields_carry_over(tmp_path):
    dpo = dpo_config(tmp_path, pad_to_multiple_of=8, activation_offloading=True, truncation_mode="keep_end")
    config = from_dpo_config(dpo)
    assert (config.pad_to_multiple_of, config.activation_offloading, config.truncation_mode) == (8, True, "keep_end")


def test_trainer_takes_a_dpo_config_and_matches_trl(tokenizer, tmp_path):
    """The same DPOConfig (DPO's loss: tidpo's dpo baseline) gives TRL's loss on the same batch."""
    args = dpo_config(tmp_path, beta=0.1, max_length=64)
    data = sentiment_pairs(3)
    common = {"train_dataset": data, "processing_class": tokenizer}
    ours = TIDPOTrainer(model=make_model(tokenizer, seed=1), ref_model=make_model(tokenizer, seed=0),
                        args=from_dpo_config(args, baseline="dpo"), **common)  # fmt: skip
    theirs = trl.DPOTrainer(model=make_model(tokenizer, seed=1), ref_model=make_model(tokenizer, seed=0), args=args,
                            **common)  # fmt: skip
    examples = [theirs.train_dataset[i] for i in range(3)]
    ours.model.train(), theirs.model.train()
    our_loss = ours.compute_loss(ours.model, ours.data_collator([ours.train_dataset[i] for i in range(3)]))
    trl_loss = theirs.compute_loss(theirs.model, theirs.data_collator(examples))
    torch.testing.assert_close(our_loss, trl_loss, atol=1e-5, rtol=0)
    direct = TIDPOTrainer(model=make_model(tokenizer, seed=1), args=args, **common)  # converted inside
    assert isinstance(direct.args, TIDPOConfig) and direct.args.beta == 0.1 and direct.args.importance == "confidence"


def test_every_dpo_config_field_is_classified_and_documented():
    trainer_fields = {f.name for f in fields(TrainingArguments)}
    own = [f.name for f in fields(trl.DPOConfig) if f.init and f.name not in trainer_fields]
    known = set(CARRIED) | set(REQUIRED) | set(ONLY_WITH) | set(IGNORED)
    assert sorted(set(own) - known) == []
    documented = set(re.findall(r"^\| `(\w+)` \|", DOC.read_text(encoding="utf-8"), flags=re.M))
    changed_defaults = ["learning_rate", "bf16", "gradient_checkpointing", "logging_steps", "remove_unused_columns"]
    assert sorted(set(own + changed_defaults) - documented) == []
