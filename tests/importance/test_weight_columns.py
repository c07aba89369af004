"""Token weights from the data: the ``chosen_weights`` / ``rejected_weights`` columns and the ``columns`` and
``columns_raw`` estimators (docs/method.md §1, "Weights from the data").

The column rule: one number per response token as tidpo tokenises it, without the final EOS (which gets 0).
Token ids of the tiny tokenizer (tests/tiny.py): <|im_start|>=2 <|im_end|>(EOS)=3 good=9 bad=10 cats=48 are=50
user=34 hi=58 "\\n"=64.
"""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F
from datasets import Dataset
from torch.testing import assert_close

from tests.data.rows import CHAT, STANDARD
from tests.tiny import make_model, one_torch_thread
from tests.training.helpers import config, make_trainer, one_sgd_step, sentiment_pairs, varied_pairs
from tidpo import TIDPOTrainer
from tidpo.data import (
    PreferenceCollator,
    PreferenceDataError,
    add_token_weight_columns,
    tokenize_preference_dataset,
    tokenize_preference_row,
)
from tidpo.importance import ESTIMATORS, needs_attribution, needs_weight_columns, token_weights
from tidpo.training.config import CHOICES


@pytest.fixture(autouse=True)
def single_thread():
    with one_torch_thread():
        yield


def with_weights(rows: list[dict], tokenizer, chosen=None, rejected=None) -> list[dict]:
    """``rows`` with weight columns of the right length: ``chosen(n)`` / ``rejected(n)`` give ``n`` weights
    (default: 1, 2, ..., n and 0.5 each)."""
    chosen = chosen or (lambda n: [float(i + 1) for i in range(n)])
    rejected = rejected or (lambda n: [0.5] * n)
    out = []
    for row in rows:
        ids = tokenize_preference_row(row, tokenizer)
        out.append(
            {
                **row,
                "chosen_weights": chosen(len(ids["chosen_ids"]) - 1),
                "rejected_weights": rejected(len(ids["rejected_ids"]) - 1),
            }
        )
    return out


def tokenize(rows, tokenizer, **kwargs) -> Dataset:
    return tokenize_preference_dataset(Dataset.from_list(rows), tokenizer, weight_columns=True, **kwargs)


# ---- the column rule -------------------------------------------------------------------------------------------


def test_standard_row_one_weight_per_token_before_the_appended_eos(tokenizer):
    row = {**STANDARD[0], "chosen_weights": [0.25, 1.0, 2.0], "rejected_weights": [1, 0, 3]}  # ints are numbers
    (out,) = tokenize([row], tokenizer).to_list()
    assert out["chosen_ids"] == [48, 50, 9, 3]  # " cats are good" + the EOS tidpo appends
    assert out["chosen_token_weights"] == [0.25, 1.0, 2.0, 0.0]  # aligned with the ids, the EOS gets 0
    assert out["rejected_token_weights"] == [1.0, 0.0, 3.0, 0.0]


def test_response_that_already_ends_in_eos_still_counts_the_tokens_before_it(tokenizer):
    row = {
        **STANDARD[0],
        "chosen": " cats are good <|im_end|>",
        "chosen_weights": [1, 2, 3],
        "rejected_weights": [1, 1, 1],
    }
    (out,) = tokenize([row], tokenizer).to_list()
    assert out["chosen_ids"] == [48, 50, 9, 3]  # the data's own EOS, kept once
    assert out["chosen_token_weights"] == [1.0, 2.0, 3.0, 0.0]
    with pytest.raises(PreferenceDataError, match="4 weights for 3 response tokens"):
        tokenize([{**row, "chosen_weights": [1, 2, 3, 4]}], tokenizer)  # a weight for the data's EOS: wrong


def test_conversational_rows_count_the_assistant_turn_without_its_final_eos(tokenizer):
    (out,) = tokenize([{**CHAT[0], "chosen_weights": [1, 2, 3], "rejected_weights": [3, 2, 1]}], tokenizer).to_list()
    assert out["chosen_ids"] == [48, 50, 9, 3]  # the template's "\n" after <|im_end|> is cut
    assert out["rejected_token_weights"] == [3.0, 2.0, 1.0, 0.0]
    # two assistant turns: the first turn's EOS and the template's tokens are response tokens with a weight
    multi = {**CHAT[0], "chosen": [{"role": "assistant", "content": "hi"}, {"role": "user", "content": "hi"}]}
    (out,) = tokenize([{**multi, "chosen_weights": [1, 9, 1, 1, 1, 1, 1], "rejected_weights": [1, 1, 1]}], tokenizer)
    assert out["chosen_ids"] == [58, 3, 64, 2, 34, 64, 58, 3]
    assert out["chosen_token_weights"] == [1.0, 9.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0]  # inner EOS: 9


def test_already_tokenised_rows_follow_the_same_rule(tokenizer):
    tokenized = tokenize_preference_dataset(Dataset.from_list(with_weights(STANDARD, tokenizer)), tokenizer)
    assert "chosen_token_weights" not in tokenized.column_names  # weight_columns=False: columns left alone
    out = add_token_weight_columns(tokenized, tokenizer.eos_token_id)
    assert out[1]["chosen_token_weights"] == [1.0, 2.0, 3.0, 0.0]  # " dogs are great" + EOS
    broken = tokenized.map(lambda row: {"chosen_ids": row["chosen_ids"][:-1]})  # no final EOS
    with pytest.raises(PreferenceDataError, match=r"row 1, field 'chosen_weights': the tokenised response .* EOS"):
        add_token_weight_columns(broken, tokenizer.eos_token_id)


# ---- checks at tokenisation: the row, the field, what was found ------------------------------------------------

# (value, message, whether Arrow can store it in a column beside a valid row's list of floats)
BAD_VALUES = [
    ([1.0, 2.0], r"2 weights for 3 response tokens \(the response's tokens as tidpo tokenises them, without the final",
     True),
    ([1.0, 2.0, 3.0, 4.0, 5.0], "5 weights for 3 response tokens", True),
    ([1.0, -0.5, 2.0], "entry 1 is -0.5; weights must be non-negative", True),
    ([1.0, float("nan"), 2.0], "entry 1 is nan; weights must be finite", True),
    ([float("-inf"), 1.0, 2.0], "entry 0 is -inf; weights must be finite", True),
    (None, r"expected a list of non-negative numbers.*, got nothing \(None\)", True),
    ([[1.0], [2.0], [3.0]], r"entry 0 is \[1.0\] \(a list\), not a number", False),
    ([True, False, True], r"entry 0 is True \(a bool\), not a number", False),
    ("1 2 3", r"expected a list of non-negative numbers, one per response token .*, got a str \('1 2 3'\)", False),
]  # fmt: skip


@pytest.mark.parametrize(("value", "message", "beside"), BAD_VALUES, ids=[str(v) for v, *_ in BAD_VALUES])
def test_bad_weights_name_the_row_and_the_field(tokenizer, value, message, beside):
    """The bad value in row 2 (" I hated dogs": 3 tokens before the EOS) after a valid row 1, or alone in row 1
    where Arrow cannot put it in one column with a valid row's list of floats."""
    rows = with_weights(STANDARD, tokenizer) if beside else with_weights(STANDARD[1:], tokenizer)
    rows[-1]["rejected_weights"] = value
    row = 2 if beside else 1
    with pytest.raises(PreferenceDataError, match=rf"^eval dataset, row {row}, field 'rejected_weights': {message}"):
        tokenize_preference_dataset(Dataset.from_list(rows), tokenizer, name="eval", weight_columns=True)


def test_the_first_bad_row_is_named(tokenizer):
    rows = with_weights([STANDARD[0], STANDARD[1], STANDARD[0]], tokenizer)
    rows[2]["chosen_weights"] = [1.0]
    with pytest.raises(PreferenceDataError, match=r"^train dataset, row 3, field 'chosen_weights': 1 weights for 3"):
        tokenize(rows, tokenizer)


def test_missing_column_names_what_is_missing(tokenizer):
    rows = [{k: v for k, v in row.items() if k != "rejected_weights"} for row in with_weights(STANDARD, tokenizer)]
    with pytest.raises(PreferenceDataError, match=r"^train dataset: missing column\(s\) \['rejected_weights'\]"):
        tokenize(rows, tokenizer)


def test_columns_are_ignored_when_not_asked_for(tokenizer):
    rows = with_weights(STANDARD, tokenizer)
    rows[0]["chosen_weights"] = [-1.0]  # wrong in every way, but nobody reads it
    tokenized = tokenize_preference_dataset(Dataset.from_list(rows), tokenizer)
    assert tokenized[0]["chosen_weights"] == [-1.0]
    batch = PreferenceCollator(tokenizer.pad_token_id)([tokenized[0], tokenized[1]])
    assert "token_weights" not in batch


def test_all_zero_weights_need_the_prior(tokenizer):
    rows = with_weights(STANDARD, tokenizer, rejected=lambda n: [0.0] * n)
    with pytest.raises(PreferenceDataError, match=r"^train dataset, row 1, field 'rejected_weights': all 3 weights"):
        tokenize(rows, tokenizer)
    assert tokenize(rows, tokenizer, allow_zero_weights=True)[0]["rejected_token_weights"] == [0.0] * 4


def test_all_zero_counts_only_the_tokens_that_survive_max_length(tokenizer):
    # prompt 7 tokens + " cats are good" (3 + EOS); max_length 9 keeps "cats are": weights [0, 0] are all 0
    rows = with_weights(STANDARD[:1], tokenizer, chosen=lambda n: [0.0, 0.0, 5.0])
    assert tokenize(rows, tokenizer, max_length=10)[0]["chosen_token_weights"] == [0.0, 0.0, 5.0, 0.0]
    with pytest.raises(PreferenceDataError, match=r"all 2 weights .*\(the first 2, which survive max_length\)"):
        tokenize(rows, tokenizer, max_length=9)


def test_a_row_of_mixed_types_in_a_file_names_its_line(tmp_path):
    from tidpo.data import load_preference_data

    rows = [{**STANDARD[0], "chosen_weights": [1.0, 2.0, 3.0]}, {**STANDARD[0], "chosen_weights": "1 2 3"}]
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    with pytest.raises(PreferenceDataError, match=r"pairs.jsonl, line 2, field 'chosen_weights': its value \(str"):
        load_preference_data(path)


# ---- the collator: the token frame of completion_mask -----------------------------------------------------------


def test_collator_pads_weights_in_the_completion_frame_and_truncates_them_with_their_tokens(tokenizer):
    data = tokenize(with_weights(STANDARD, tokenizer), tokenizer)  # prompts of 7 tokens, responses of 3 + EOS
    batch = PreferenceCollator(tokenizer.pad_token_id)([data[0], data[1]])
    assert batch["token_weights"].dtype == torch.float32
    assert batch["token_weights"].shape == batch["completion_mask"].shape == (4, 11)
    assert batch["token_weights"][0].tolist() == [0.0] * 7 + [1.0, 2.0, 3.0, 0.0]
    assert batch["token_weights"][3].tolist() == [0.0] * 7 + [0.5, 0.5, 0.5, 0.0]
    assert (batch["token_weights"][batch["completion_mask"] == 0] == 0).all()
    cut = PreferenceCollator(tokenizer.pad_token_id, max_length=9)([data[0], data[1]])
    assert cut["token_weights"][0].tolist() == [0.0] * 7 + [1.0, 2.0]  # keep-start: the first two tokens' weights


def test_collator_refuses_weights_of_the_wrong_count():
    example = {"prompt_ids": [1, 2], "chosen_ids": [4, 3], "rejected_ids": [5, 3],
               "chosen_token_weights": [1.0, 0.0], "rejected_token_weights": [1.0]}  # fmt: skip
    with pytest.raises(ValueError, match="pair 0 of the batch has 1 rejected_token_weights values for its 2 response"):
        PreferenceCollator(pad_token_id=0)([example])


# ---- the estimators ----------------------------------------------------------------------------------------------


def test_the_table_registers_both_and_neither_needs_the_attribution():
    assert ESTIMATORS["columns"].hybrid and not ESTIMATORS["columns_raw"].hybrid
    assert {"columns", "columns_raw"} <= set(CHOICES["importance"])
    for name in ("columns", "columns_raw"):
        assert needs_weight_columns(name) and not needs_attribution(name, 0.7)
    assert not needs_weight_columns("hybrid") and not needs_weight_columns(lambda *a: None)


def test_columns_with_lambda_one_is_t_times_i_over_sum_i_on_the_response():
    """Prompt 1 token, response 2 tokens + EOS: I = [1, 3, 0] (EOS 0), T = 3, λ = 1:
    w = 3 · [1, 3, 0] / 4 = [0.75, 2.25, 0]; the prompt's column value (7) is never read."""
    completion = torch.tensor([[0, 1, 1, 1]])
    values = torch.tensor([[7.0, 1.0, 3.0, 0.0]])
    w = token_weights("columns", completion, column_weights=values, mix=1.0, span="response")
    assert_close(w, torch.tensor([[0.0, 0.75, 2.25, 0.0]]))
    w_sum = token_weights("columns", completion, column_weights=values, mix=1.0, norm="sum")
    assert_close(w_sum, torch.tensor([[0.0, 0.25, 0.75, 0.0]]))


def test_columns_sequence_span_gives_the_prompt_score_zero():
    """Prompt 2 + response 3, I = [0, 0, 2, 2, 0] over the sequence (prompt scores 0, whatever the column holds),
    λ = 0.5, prior_sigma_div = 5: σ = 1, μ = 2, P ∝ [e^-2, e^-½, 1, e^-½, e^-2];
    W = .5 · [0, 0, .5, .5, 0] + .5 · P, w = 5 W (ΣW = 1), and the response keeps w[2:]."""
    completion = torch.tensor([[0, 0, 1, 1, 1]])
    attention = torch.ones_like(completion)
    values = torch.tensor([[9.0, 9.0, 2.0, 2.0, 0.0]])
    raw = [math.exp(-2), math.exp(-0.5), 1.0, math.exp(-0.5), math.exp(-2)]
    prior = [p / sum(raw) for p in raw]
    share = [0.0, 0.0, 0.5, 0.5, 0.0]
    expected = [5 * (0.5 * s + 0.5 * p) for s, p in zip(share, prior, strict=True)]
    w = token_weights("columns", completion, column_weights=values, attention_mask=attention, mix=0.5,
                      sigma_div=5.0, span="sequence")  # fmt: skip
    assert_close(w, torch.tensor([[0.0, 0.0, *expected[2:]]]))
    assert w[0, 2:].sum().item() != pytest.approx(3.0)  # the sequence span's slice is kept as it is


def test_columns_raw_are_the_weights_as_they_are():
    completion = torch.tensor([[0, 1, 1, 1], [0, 0, 1, 1]])
    values = torch.tensor([[5.0, 0.5, 4.0, 0.0], [0.0, 0.0, 2.0, 0.0]])
    for norm, span in (("mean", "response"), ("sum", "sequence")):  # no normalisation, no span
        w = token_weights("columns_raw", completion, column_weights=values, norm=norm, span=span, mix=0.3,
                          attention_mask=torch.ones_like(completion))  # fmt: skip
        assert_close(w, torch.tensor([[0.0, 0.5, 4.0, 0.0], [0.0, 0.0, 2.0, 0.0]]))


def test_column_estimators_fail_loudly():
    completion = torch.tensor([[0, 1, 1]])
    with pytest.raises(ValueError, match="importance='columns_raw' needs column_weights"):
        token_weights("columns_raw", completion)
    with pytest.raises(ValueError, match=r"rows \[0\] of the batch: the column weights are all 0"):
        token_weights("columns_raw", completion, column_weights=torch.tensor([[3.0, 0.0, 0.0]]))
    with pytest.raises(ValueError, match="with λ = 1 has no prior to fall back on"):
        token_weights("columns", completion, column_weights=torch.zeros(1, 3), mix=1.0)
    with pytest.raises(ValueError, match="must be non-negative"):
        token_weights("columns", completion, column_weights=torch.tensor([[0.0, -1.0, 1.0]]))
    with pytest.raises(FloatingPointError, match="NaN or Inf"):
        token_weights("columns", completion, column_weights=torch.tensor([[0.0, float("nan"), 1.0]]))
    with pytest.raises(ValueError, match=r"must have shape \(1, 3\)"):
        token_weights("columns", completion, column_weights=torch.ones(1, 4))


def test_all_zero_columns_mixed_with_the_prior_give_the_prior():
    completion = torch.tensor([[0, 1, 1, 1]])
    w = token_weights("columns", completion, column_weights=torch.zeros(1, 4), mix=0.7)
    assert_close(w, token_weights("prior", completion))
    assert w[0, 2] > w[0, 1] > 0  # the Gaussian, not uniform


# ---- training: the hand-computed loss, every layout, a few steps, evaluation ------------------------------------


def _response_logps(model, ids: list[int], prompt_length: int) -> torch.Tensor:
    """log π(token_j | tokens before it) for the response tokens of one unpadded row."""
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids])).logits[0]
    logps = F.log_softmax(logits.float(), dim=-1)
    return torch.stack([logps[j - 1, ids[j]] for j in range(prompt_length, len(ids))])


def test_columns_raw_loss_is_the_hand_weighted_dpo_loss(tokenizer, tmp_path):
    """L = mean over pairs of −log σ(β (Σ_t w^w_t ρ_t(y_w) − Σ_t w^l_t ρ_t(y_l))), with the dataset's weights
    and 0 for each final EOS, from per-token log-probs of each row run alone (no padding)."""
    raw = [0.5, 2.0, 0.0, 1.5, 3.0, 1.0, 0.25]
    rows = with_weights(
        sentiment_pairs(3).to_list(), tokenizer, chosen=lambda n: raw[:n], rejected=lambda n: raw[::-1][:n]
    )
    trainer = make_trainer(tokenizer, tmp_path, data=Dataset.from_list(rows), importance="columns_raw",
                           kl_mode="none", triplet_weight=0.0, beta=0.5, per_device_train_batch_size=3)  # fmt: skip
    assert trainer.routes.attribution == "none"
    data = trainer.train_dataset
    batch = trainer.data_collator([data[i] for i in range(3)])
    trainer.model.train()
    loss = trainer.compute_loss(trainer.model, batch)

    margins, uniform_margins = [], []
    for row in rows:
        ids = tokenize_preference_row(row, tokenizer)
        prompt = ids["prompt_ids"]
        ratios, uniform = [], []
        for side in ("chosen", "rejected"):
            full = prompt + ids[f"{side}_ids"]
            rho = _response_logps(trainer.model, full, len(prompt)) - _response_logps(
                trainer.ref_model, full, len(prompt)
            )
            weights = torch.tensor([*row[f"{side}_weights"], 0.0])  # the final EOS gets 0
            ratios.append((weights * rho).sum())
            uniform.append(rho.sum())
        margins.append(ratios[0] - ratios[1])
        uniform_margins.append(uniform[0] - uniform[1])
    expected = -F.logsigmoid(0.5 * torch.stack(margins)).mean()
    assert loss.item() == pytest.approx(expected.item(), abs=1e-5)
    plain_dpo = -F.logsigmoid(0.5 * torch.stack(uniform_margins)).mean()
    assert abs(expected.item() - plain_dpo.item()) > 1e-3  # the weights really change this loss


@pytest.mark.parametrize("importance", ["columns", "columns_raw"])
def test_every_layout_gives_the_whole_rows_step(tokenizer, tmp_path, importance):
    rows = with_weights(varied_pairs(4).to_list(), tokenizer, rejected=lambda n: [float(n - i) for i in range(n)])
    runs = {}
    for layout, options in {"whole rows": {"share_prompt": False}, "packed rows": {"padding_free": True},
                            "shared prompt": {"share_prompt": True}}.items():  # fmt: skip
        trainer, _ = one_sgd_step(tokenizer, tmp_path / layout, data=Dataset.from_list(rows), importance=importance,
                                  weight_span="sequence", triplet_weight=1.0, **options)  # fmt: skip
        assert (trainer.routes.layout, trainer.routes.attribution) == (layout, "none")
        runs[layout] = (
            trainer.state.log_history[0],
            {n: p.detach().clone() for n, p in trainer.model.named_parameters()},
        )
    base_log, base_params = runs["whole rows"]
    for layout in ("packed rows", "shared prompt"):
        log, params = runs[layout]
        for key in ("loss", "rewards/margins", "weights/max", "weights/min", "kl/chosen"):
            assert log[key] == pytest.approx(base_log[key], abs=1e-5), (layout, key)
        for name, value in params.items():
            assert_close(value, base_params[name], atol=1e-5, rtol=0, msg=name)
    if importance == "columns_raw":  # the data's weights: 1..n on chosen, n..1 on rejected, 0 on each final EOS
        counts = [len(tokenize_preference_row(row, tokenizer)[f"{side}_ids"]) - 1
                  for row in rows for side in ("chosen", "rejected")]  # fmt: skip
        assert base_log["weights/max"] == pytest.approx(sum(counts) / len(counts))  # mean of the rows' maxima
        assert base_log["weights/min"] == 0.0
    else:
        assert base_log["weights/min"] > 0.0  # the prior gives every token, the EOS too, some weight


def test_a_few_columns_steps_stay_finite_and_evaluate_the_same_objective(tokenizer, tmp_path):
    """Three steps of importance='columns' (one batch of the 4 pairs each); with eval_importance the held-out loss
    on the same pairs before any update is the first step's loss, with the same weights."""
    rows = with_weights(sentiment_pairs(4).to_list(), tokenizer)
    args = config(tmp_path, importance="columns", max_steps=3, per_device_train_batch_size=4, triplet_weight=0.0,
                  eval_importance=True)  # fmt: skip
    trainer = TIDPOTrainer(model=make_model(tokenizer, seed=1), ref_model=make_model(tokenizer, seed=0), args=args,
                           train_dataset=Dataset.from_list(rows), eval_dataset=Dataset.from_list(rows),
                           processing_class=tokenizer)  # fmt: skip
    before = trainer.evaluate()
    trainer.train()
    steps = [log for log in trainer.state.log_history if "loss" in log and "train_loss" not in log]
    assert len(steps) == 3 and all(math.isfinite(log["loss"]) and math.isfinite(log["weights/max"]) for log in steps)
    assert "time/attribution" not in steps[0]  # the attribution pass is skipped
    assert before["eval_loss"] == pytest.approx(steps[0]["loss"], abs=1e-5)
    assert before["eval_weights/max"] == pytest.approx(steps[0]["weights/max"], abs=1e-5)
    assert steps[0]["weights/max"] > 1.0


def test_evaluation_without_eval_importance_needs_no_columns(tokenizer, tmp_path):
    rows = with_weights(sentiment_pairs(4).to_list(), tokenizer)
    trainer = TIDPOTrainer(model=make_model(tokenizer, seed=1), ref_model=make_model(tokenizer, seed=0),
                           args=config(tmp_path, importance="columns_raw"), train_dataset=Dataset.from_list(rows),
                           eval_dataset=sentiment_pairs(2), processing_class=tokenizer)  # fmt: skip
    metrics = trainer.evaluate()
    assert metrics["eval_weights/max"] == 1.0 and math.isfinite(metrics["eval_loss"])  # uniform at evaluation


def test_training_data_without_the_columns_fails_before_training(tokenizer, tmp_path):
    with pytest.raises(PreferenceDataError, match=r"train dataset: missing column\(s\) \['chosen_weights', 'rej"):
        make_trainer(tokenizer, tmp_path, importance="columns")
    rows = with_weights(sentiment_pairs(4).to_list(), tokenizer)
    with pytest.raises(PreferenceDataError, match="eval dataset: missing column"):
        TIDPOTrainer(model=make_model(tokenizer), args=config(tmp_path, importance="columns", eval_importance=True),
                     train_dataset=Dataset.from_list(rows), eval_dataset=sentiment_pairs(2),
                     processing_class=tokenizer)  # fmt: skip


def test_cli_trains_two_steps_with_columns(tokenizer, tmp_path, capsys):
    from tidpo.cli.main import main as tidpo

    model_dir = tmp_path / "base"
    make_model(tokenizer, seed=0).save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in with_weights(sentiment_pairs(4).to_list(), tokenizer)))
    out = tmp_path / "out"
    argv = ["train", "--model", str(model_dir), "--dataset", str(data), "--output_dir", str(out),
            "--importance", "columns", "--max_steps", "2", "--per_device_train_batch_size", "2", "--logging_steps",
            "1", "--max_length", "32", "--anchor_max_new_tokens", "4", "--learning_rate", "1e-2", "--use_cpu",
            "--disable_tqdm", "true", "--dataloader_num_workers", "0"]  # fmt: skip
    assert tidpo(argv) == 0
    assert "attribution=none" in capsys.readouterr().err
    logs = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    losses = [log["loss"] for log in logs if "loss" in log]
    assert len(losses) == 2 and all(math.isfinite(value) for value in losses)
