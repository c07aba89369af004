"""TRL 1.16's DPOTrainer arguments, run through tidpo: what TRL's own tests check of them (issue 23, rows 1, 2, 7, 8,
9, 10), on the tiny models built in code."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.tiny import make_model
from tests.training.helpers import config, sentiment_pairs
from tidpo import TIDPOTrainer


@pytest.fixture
def saved(tokenizer, tmp_path):
    """A tiny model saved in bfloat16 with its tokenizer, as most Hub checkpoints are."""
    folder = tmp_path / "bf16-model"
    make_model(tokenizer, seed=1).to(torch.bfloat16).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


def test_train_dataset_none_is_refused_at_construction(tokenizer, tmp_path):
    with pytest.raises(ValueError, match="train_dataset is required"):
        TIDPOTrainer(model=make_model(tokenizer), args=config(tmp_path), processing_class=tokenizer)


def test_evaluation_only_trainer_evaluates(tokenizer, tmp_path):
    trainer = TIDPOTrainer(
        model=make_model(tokenizer, seed=1),
        ref_model=make_model(tokenizer, seed=0),
        args=config(tmp_path),
        eval_dataset=sentiment_pairs(2),
        processing_class=tokenizer,
        evaluation_only=True,
    )
    assert np.isfinite(trainer.evaluate()["eval_loss"])


def test_model_by_name_loads_in_float32(saved, tmp_path):
    trainer = TIDPOTrainer(model=saved, args=config(tmp_path), train_dataset=sentiment_pairs(2))
    assert trainer.model.dtype == torch.float32 and trainer.ref_model.dtype == torch.float32


def test_model_init_kwargs_dtype_wins(saved, tmp_path):
    args = config(tmp_path, model_init_kwargs={"dtype": "bfloat16"})
    trainer = TIDPOTrainer(model=saved, args=args, train_dataset=sentiment_pairs(2))
    assert trainer.model.dtype == torch.bfloat16


def test_tokenizer_from_the_models_name_or_path(saved, tokenizer, tmp_path):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(saved, dtype=torch.float32)
    trainer = TIDPOTrainer(model=model, args=config(tmp_path), train_dataset=sentiment_pairs(2))
    assert trainer.processing_class.get_vocab() == tokenizer.get_vocab()
    assert trainer.processing_class.eos_token == tokenizer.eos_token


def test_model_without_a_name_and_no_tokenizer_is_one_line(tokenizer, tmp_path):
    with pytest.raises(ValueError, match="processing_class is None and the model has no name_or_path"):
        TIDPOTrainer(model=make_model(tokenizer), args=config(tmp_path), train_dataset=sentiment_pairs(2))


def test_model_is_tagged_trl_dpo(tokenizer, tmp_path):
    trainer = TIDPOTrainer(
        model=make_model(tokenizer), args=config(tmp_path), train_dataset=sentiment_pairs(2), processing_class=tokenizer
    )
    assert trainer.model.model_tags == ["trl", "dpo", "tidpo"]


def test_model_tags_are_saved(tokenizer, tmp_path):
    from peft import LoraConfig

    trainer = TIDPOTrainer(
        model=make_model(tokenizer),
        args=config(tmp_path),
        train_dataset=sentiment_pairs(2),
        processing_class=tokenizer,
        peft_config=LoraConfig(r=2, target_modules="all-linear"),
    )
    assert {"trl", "dpo"} <= set(trainer.model.model_tags)


def test_compute_metrics_is_called_at_evaluation(tokenizer, tmp_path):
    seen = []

    def compute_metrics(prediction):
        seen.append(prediction)
        return {"rows": float(prediction.label_ids.shape[0])}

    trainer = TIDPOTrainer(
        model=make_model(tokenizer, seed=1),
        ref_model=make_model(tokenizer, seed=0),
        args=config(tmp_path, per_device_eval_batch_size=2),
        train_dataset=sentiment_pairs(2),
        eval_dataset=sentiment_pairs(3),
        processing_class=tokenizer,
        compute_metrics=compute_metrics,
    )
    metrics = trainer.evaluate()
    assert len(seen) == 1 and metrics["eval_rows"] == seen[0].label_ids.shape[0]
    logits, labels = seen[0].predictions, seen[0].label_ids
    assert logits.shape[:2] == labels.shape and logits.shape[2] == len(tokenizer)
    rows = [p["prompt_ids"] + p[k] for p in trainer.eval_dataset for k in ("chosen_ids", "rejected_ids")]
    row = [t for t in labels[0].tolist() if t not in (-100, tokenizer.pad_token_id)]
    assert row in rows  # a whole prompt + response row of the eval pairs
    with torch.no_grad():  # the logits are the policy's on that row
        expected = trainer.model(input_ids=torch.tensor([row])).logits[0].numpy()
    np.testing.assert_allclose(logits[0, : len(row)], expected, atol=1e-5)


def test_quantization_config_for_a_built_model_is_refused(tokenizer, tmp_path):
    from transformers import BitsAndBytesConfig

    with pytest.raises(ValueError, match="quantization_config applies when the model is loaded by name"):
        TIDPOTrainer(
            model=make_model(tokenizer),
            args=config(tmp_path),
            train_dataset=sentiment_pairs(2),
            processing_class=tokenizer,
            quantization_config=BitsAndBytesConfig(load_in_4bit=True),
        )


def test_quantization_config_goes_to_from_pretrained(saved, tmp_path, monkeypatch):
    """bitsandbytes is not installed here: the loader is replaced to see what it is given (policy and reference)."""
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    import tidpo.models

    calls, quant = [], BitsAndBytesConfig(load_in_4bit=True)

    def load(name, **kwargs):
        calls.append(kwargs)
        return AutoModelForCausalLM.from_pretrained(saved, dtype=kwargs["dtype"])

    monkeypatch.setattr(tidpo.models, "load_pretrained_causal_lm", load)
    TIDPOTrainer(
        model=saved, ref_model=saved, args=config(tmp_path), train_dataset=sentiment_pairs(2), quantization_config=quant
    )
    assert len(calls) == 2 and all(c["quantization_config"] is quant and c["dtype"] == torch.float32 for c in calls)


def test_quantization_config_given_twice_is_refused(saved, tmp_path):
    from transformers import BitsAndBytesConfig

    quant = BitsAndBytesConfig(load_in_4bit=True)
    with pytest.raises(ValueError, match="given both to the trainer and in args.model_init_kwargs"):
        TIDPOTrainer(
            model=saved,
            args=config(tmp_path, model_init_kwargs={"quantization_config": {"x": 1}}),
            train_dataset=sentiment_pairs(2),
            quantization_config=quant,
        )


def test_a_vision_processor_as_processing_class_is_one_line(tokenizer, tmp_path):
    """TRL takes a processor for vision-language models; tidpo is text-only and says so at construction."""
    from transformers import CLIPImageProcessorPil, LlavaProcessor

    processor = LlavaProcessor(image_processor=CLIPImageProcessorPil(), tokenizer=tokenizer)
    with pytest.raises(ValueError, match=r"processing_class is a processor \(LlavaProcessor\).*processor\.tokenizer"):
        TIDPOTrainer(model=make_model(tokenizer), args=config(tmp_path), train_dataset=sentiment_pairs(2),
                     processing_class=processor)  # fmt: skip


_REMOTE_CONFIG = """from transformers import LlamaConfig


class RemoteTinyConfig(LlamaConfig):
    model_type = "remote_tiny"
"""
_REMOTE_MODEL = """from transformers import LlamaForCausalLM

from .configuration_remote_tiny import RemoteTinyConfig


class RemoteTinyForCausalLM(LlamaForCausalLM):
    config_class = RemoteTinyConfig
"""


@pytest.fixture
def remote_code_model(tokenizer, tmp_path):
    """A tiny model whose classes live in its own folder (``auto_map``), as models with custom code on the Hub do."""
    import json

    folder = tmp_path / "remote-tiny"
    make_model(tokenizer, seed=1).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    (folder / "configuration_remote_tiny.py").write_text(_REMOTE_CONFIG)
    (folder / "modeling_remote_tiny.py").write_text(_REMOTE_MODEL)
    config = json.loads((folder / "config.json").read_text())
    config["model_type"] = "remote_tiny"
    config["auto_map"] = {"AutoConfig": "configuration_remote_tiny.RemoteTinyConfig",
                          "AutoModelForCausalLM": "modeling_remote_tiny.RemoteTinyForCausalLM"}  # fmt: skip
    (folder / "config.json").write_text(json.dumps(config))
    return str(folder)


def test_trust_remote_code_loads_the_models_own_classes(remote_code_model, tmp_path):
    args = config(tmp_path, trust_remote_code=True, max_steps=1)
    trainer = TIDPOTrainer(model=remote_code_model, args=args, train_dataset=sentiment_pairs(2))
    assert type(trainer.model).__name__ == "RemoteTinyForCausalLM"
    assert type(trainer.ref_model).__name__ == "RemoteTinyForCausalLM"
    assert np.isfinite(trainer.train().training_loss)


def test_remote_code_without_trust_remote_code_is_refused(remote_code_model, tmp_path):
    with pytest.raises(ValueError, match="trust_remote_code"):
        TIDPOTrainer(model=remote_code_model, args=config(tmp_path), train_dataset=sentiment_pairs(2))
