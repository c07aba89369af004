"""Streaming data (IterableDataset, IterableDatasetDict) and evaluate() of several named sets, as TRL 1.16's
DPOTrainer takes them (issue 23, row 3)."""

from __future__ import annotations

import math

import pytest
from datasets import Dataset, DatasetDict, IterableDatasetDict
from torch.utils.data import SequentialSampler

from tests.tiny import make_model
from tests.training.helpers import config, sentiment_pairs
from tidpo import TIDPOTrainer
from tidpo.data import PreferenceDataError


def _trainer(tokenizer, tmp_path, train, eval_dataset=None, **overrides):
    return TIDPOTrainer(
        model=make_model(tokenizer, seed=1),
        ref_model=make_model(tokenizer, seed=0),
        args=config(tmp_path, **overrides),
        train_dataset=train,
        eval_dataset=eval_dataset,
        processing_class=tokenizer,
    )


def test_streaming_train_and_eval_equal_the_same_pairs_in_memory(tokenizer, tmp_path):
    """Two steps on a stream give the same loss as on the same pairs in memory (no shuffle: a stream is read in
    order, so the in-memory run reads them in order too)."""
    pairs = sentiment_pairs(4)
    common = {"max_steps": 2, "triplet_weight": 0.0, "importance": "uniform", "kl_mode": "none"}
    streamed = _trainer(tokenizer, tmp_path / "s", pairs.to_iterable_dataset(), pairs.to_iterable_dataset(), **common)
    assert streamed.args.accelerator_config.dispatch_batches is False
    streamed_eval = streamed.evaluate()
    in_memory = _trainer(tokenizer, tmp_path / "m", pairs, pairs, **common)
    assert streamed_eval["eval_loss"] == pytest.approx(in_memory.evaluate()["eval_loss"], abs=1e-6)
    # read in order, as the stream is
    in_memory._get_train_sampler = lambda *a, **k: SequentialSampler(in_memory.train_dataset)
    ours, theirs = streamed.train().training_loss, in_memory.train().training_loss
    assert math.isfinite(ours) and ours == pytest.approx(theirs, abs=1e-5)


def test_streaming_bad_row_names_the_row(tokenizer, tmp_path):
    rows = sentiment_pairs(3).to_list()
    rows[1]["rejected"] = "  "
    trainer = _trainer(tokenizer, tmp_path, Dataset.from_list(rows).to_iterable_dataset(), max_steps=2)
    with pytest.raises(PreferenceDataError, match=r"train dataset \(streaming\), row 2, field 'rejected'"):
        trainer.train()


def test_iterable_dataset_dict_eval_prefixes_each_name(tokenizer, tmp_path):
    pairs = sentiment_pairs(4)
    evals = IterableDatasetDict({"a": pairs.select(range(2)).to_iterable_dataset(), "b": pairs.to_iterable_dataset()})
    metrics = _trainer(tokenizer, tmp_path, pairs, evals).evaluate()
    assert {"eval_a_loss", "eval_b_loss", "eval_a_rewards/margins", "eval_b_rewards/margins"} <= set(metrics)


@pytest.mark.parametrize("kind", [dict, DatasetDict])
def test_evaluate_a_dict_uses_each_name_as_prefix(tokenizer, tmp_path, kind):
    pairs = sentiment_pairs(4)
    trainer = _trainer(tokenizer, tmp_path, pairs)
    alone = trainer.evaluate(pairs.select(range(2)))["eval_loss"]
    metrics = trainer.evaluate(kind({"first": pairs.select(range(2)), "all": pairs}))
    assert metrics["eval_first_loss"] == pytest.approx(alone, abs=1e-6)
    assert math.isfinite(metrics["eval_all_loss"]) and "eval_all_rewards/accuracies" in metrics
    assert not any(key.startswith("eval_loss") for key in metrics)


def test_streaming_with_precomputed_reference_is_refused(tokenizer, tmp_path):
    pairs = sentiment_pairs(2)
    with pytest.raises(ValueError, match="precompute_ref_log_probs=True scores every train pair"):
        _trainer(
            tokenizer,
            tmp_path,
            pairs.to_iterable_dataset(),
            precompute_ref_log_probs=True,
            kl_mode="none",
            triplet_weight=0.0,
        )


def test_streaming_with_weight_columns_is_refused(tokenizer, tmp_path):
    with pytest.raises(ValueError, match="streaming data"):
        _trainer(tokenizer, tmp_path, sentiment_pairs(2).to_iterable_dataset(), importance="columns")


@pytest.mark.parametrize("declared", [True, False])
def test_streaming_images_are_refused_naming_the_column(tokenizer, tmp_path, declared):
    """A stream with an image column (TRL's vision rows) is refused, whether its features are declared or only met at
    the first row (a generator-built stream)."""
    rows = [{**row, "images": "cat.png"} for row in sentiment_pairs(2).to_list()]
    if declared:
        stream = Dataset.from_list(rows).to_iterable_dataset()
    else:
        from datasets import IterableDataset

        stream = IterableDataset.from_generator(lambda: iter(rows))
    with pytest.raises(PreferenceDataError, match=r"train dataset \(streaming\).*column 'images': tidpo trains text"):
        _trainer(tokenizer, tmp_path, stream, max_steps=1).train()
