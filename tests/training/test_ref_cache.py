"""``precompute_ref_log_probs``: per-token reference log-probs computed once, cached on disk, read from the batch.
Training with them equals training with the live reference; the reference never runs in the steps; the cache
is read back on a second run and keyed by the data and the reference's weights; misuse fails loudly."""

from __future__ import annotations

import datasets
import pytest
import torch

from tests.tiny import make_model
from tests.training.helpers import config, param_snapshot, sentiment_pairs
from tidpo import TIDPOConfig, TIDPOTrainer
from tidpo.data import PreferenceCollator, tokenize_preference_dataset

METRICS = ("loss", "rewards/chosen", "rewards/margins", "logps/rejected", "weights/max")
REF_FREE = {"kl_mode": "none", "triplet_weight": 0.0}  # hybrid weights from attribution, no KL, no anchors


@pytest.fixture(autouse=True)
def _cache_in_tmp(tmp_path, monkeypatch):
    monkeypatch.setenv("TIDPO_CACHE", str(tmp_path / "cache"))


def _trainer(tokenizer, tmp_path, precompute: bool, ref=None, **overrides):
    ref = ref if ref is not None else make_model(tokenizer, seed=0)
    calls = []

    def count(module, args, out):  # every forward on data (not the routes' one-row, two-token cache probe)
        if args[0].shape[:2] != (1, 2):
            calls.append(1)

    ref.model.layers[0].register_forward_hook(count)
    args = config(
        tmp_path, per_device_train_batch_size=4, per_device_eval_batch_size=3, optim="sgd", learning_rate=0.5,
        max_steps=2, precompute_ref_log_probs=precompute, **{**REF_FREE, **overrides},
    )  # fmt: skip
    trainer = TIDPOTrainer(
        model=make_model(tokenizer, seed=1), ref_model=ref, args=args, train_dataset=sentiment_pairs(8),
        processing_class=tokenizer,
    )  # fmt: skip
    return trainer, calls


@pytest.mark.parametrize("baseline", [None, "dpo"])
def test_training_on_cached_reference_logps_equals_the_live_reference(tokenizer, tmp_path, baseline):
    overrides = {"baseline": "dpo", "kl_mode": None, "triplet_weight": None} if baseline else {}
    runs = {}
    for precompute in (True, False):
        trainer, calls = _trainer(tokenizer, tmp_path, precompute, **overrides)
        scored = len(calls)
        trainer.train()
        runs[precompute] = trainer, scored, len(calls) - scored
    (cached, scored, during), (live, _, live_calls) = runs[True], runs[False]
    assert scored > 0 and during == 0  # scored once up front (3-row batches), never during the steps
    assert live_calls > 0
    for step in (0, 1):
        for key in METRICS:
            got, want = cached.state.log_history[step][key], live.state.log_history[step][key]
            assert got == pytest.approx(want, abs=1e-5), (step, key)
    params = param_snapshot(live.model)
    for name, value in param_snapshot(cached.model).items():
        torch.testing.assert_close(value, params[name], atol=1e-5, rtol=0, msg=name)


def test_the_cache_is_read_back_and_keyed_by_the_reference_weights(tokenizer, tmp_path):
    first, first_calls = _trainer(tokenizer, tmp_path, True)
    assert first_calls  # scored
    files = list((tmp_path / "cache" / "ref-logps").glob("*.pt"))
    assert len(files) == 1
    again, again_calls = _trainer(tokenizer, tmp_path, True)
    assert not again_calls  # read from the file: the reference did not run
    column = "ref_rejected_token_logps"
    assert again.train_dataset[column] == first.train_dataset[column]
    other = make_model(tokenizer, seed=0)
    with torch.no_grad():
        other.lm_head.weight[5, 0] += 1.0  # one changed weight: another key, scored afresh
    _, other_calls = _trainer(tokenizer, tmp_path, True, ref=other)
    assert other_calls and len(list((tmp_path / "cache" / "ref-logps").glob("*.pt"))) == 2


def test_a_damaged_or_misplaced_cache_file_is_computed_again(tokenizer, tmp_path, caplog):
    first, _ = _trainer(tokenizer, tmp_path, True)
    (path,) = (tmp_path / "cache" / "ref-logps").glob("*.pt")
    good = path.read_bytes()
    path.write_bytes(good[: len(good) // 2])  # cut short, as by a full disk
    again, calls = _trainer(tokenizer, tmp_path, True)
    assert calls and "is unreadable" in caplog.text  # scored again, not a traceback
    column = "ref_chosen_token_logps"
    assert again.train_dataset[column] == first.train_dataset[column] and path.read_bytes() != good[: len(good) // 2]
    other = path.with_name("0" * 32 + "-" + path.name.split("-")[1])
    other.write_bytes(path.read_bytes())  # a whole file, under another dataset's key
    cached = torch.load(other, weights_only=True)
    caplog.clear()
    from tidpo.training.ref_cache import _read_cached

    assert _read_cached(other, other.stem, len(first.train_dataset)) is None
    assert "written for other data or another reference" in caplog.text
    key = path.stem
    assert _read_cached(path, key, len(first.train_dataset) + 1) is None and "does not hold" in caplog.text
    assert _read_cached(path, key, len(first.train_dataset))[column] == cached[column]


def test_cached_values_are_the_reference_log_probs_of_the_response_tokens(tokenizer, tmp_path):
    trainer, _ = _trainer(tokenizer, tmp_path, True)
    row = trainer.train_dataset[3]
    ref = trainer.ref_model
    ids = torch.tensor([row["prompt_ids"] + row["chosen_ids"]])
    with torch.no_grad():
        logps = ref(input_ids=ids).logits.log_softmax(-1)[0, :-1].gather(-1, ids[0, 1:, None])[:, 0]
    want = logps[len(row["prompt_ids"]) - 1 :]
    torch.testing.assert_close(torch.tensor(row["ref_chosen_token_logps"]), want, atol=1e-5, rtol=0)


@pytest.mark.parametrize("overrides", [{"kl_mode": "tdpo2"}, {"triplet_weight": 0.1}])
def test_a_step_that_needs_the_live_reference_refuses_the_cache(tmp_path, overrides):
    with pytest.raises(ValueError, match="precompute_ref_log_probs needs"):
        TIDPOConfig(output_dir=str(tmp_path), precompute_ref_log_probs=True, **{**REF_FREE, **overrides})


def test_cached_values_that_do_not_fit_the_rows_name_the_pair(tokenizer):
    data = tokenize_preference_dataset(sentiment_pairs(2), tokenizer, max_length=64, name="train")
    rows = [dict(data[i], ref_chosen_token_logps=[0.0] * len(data[i]["chosen_ids"]),
                 ref_rejected_token_logps=[0.0] * len(data[i]["rejected_ids"])) for i in range(2)]  # fmt: skip
    assert PreferenceCollator(tokenizer.pad_token_id)(rows)["ref_token_logps"].shape[0] == 4
    rows[1]["ref_rejected_token_logps"] = rows[1]["ref_rejected_token_logps"][:-1]
    with pytest.raises(ValueError, match="pair 1 of the batch has .* cached ref_rejected_token_logps"):
        PreferenceCollator(tokenizer.pad_token_id)(rows)


def test_the_data_key_is_the_same_whatever_the_default_device():
    """A user's ``torch.set_default_device`` must not move the key's bytes off the host (a GPU run showed it
    did): 'meta' stands in for a GPU, since a meta tensor has no host bytes either."""
    from tidpo.training.ref_cache import TOKEN_COLUMNS, data_digest

    rows = {column: [[5, 7, 9], [2, 3]] for column in TOKEN_COLUMNS}
    dataset = datasets.Dataset.from_dict(rows)
    plain = data_digest(dataset, 64)
    with torch.device("meta"):
        assert data_digest(dataset, 64) == plain
    assert data_digest(dataset, 65) != plain
