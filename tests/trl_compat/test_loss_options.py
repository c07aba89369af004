"""TRL's loss options on TIDPOConfig: carried from DPOConfig, their one-line refusals of pairs that cannot run, the
preset's KL term giving way to a loss that cannot take it, and TR-DPO's reference updates."""

import pytest
import torch
from transformers import TrainerCallback

from tests.tiny import make_model
from tests.training.helpers import config, param_snapshot, sentiment_pairs
from tidpo import TIDPOTrainer
from tidpo.training.ref_sync import mix_into
from tidpo.training.trl_compat import from_dpo_config

trl = pytest.importorskip("trl")


def test_dpo_config_loss_fields_carry_over(tmp_path):
    options = {
        "loss_type": ["sigmoid", "sft"],
        "loss_weights": [1.0, 0.5],
        "label_smoothing": 0.1,
        "discopop_tau": 0.2,
        "use_weighting": True,
        "ld_alpha": 0.5,
        "f_divergence_type": "js_divergence",
        "sync_ref_model": True,
        "ref_model_mixup_alpha": 0.3,
        "ref_model_sync_steps": 7,
    }
    dpo = trl.DPOConfig(output_dir=str(tmp_path), report_to="none", use_cpu=True, bf16=False, **options)
    with pytest.warns(UserWarning, match="kl_mode='none'"):  # js_divergence: the preset's TDPO term gives way
        ours = from_dpo_config(dpo, preset="paper")
    assert {name: getattr(ours, name) for name in options} == options
    assert ours.kl_mode == "none" and ours.triplet_weight == 0.1  # the triplet composes with every loss


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"loss_type": "ipo", "kl_mode": "tdpo2"}, "kl_mode='tdpo2' (kl_weight=0.5) with loss_type='ipo'"),
        ({"loss_type": "sigmoid", "f_divergence_type": "forward_kl", "kl_mode": "tdpo1"}, "f_divergence_type="),
        ({"loss_type": ["sigmoid", "nca_pair"], "f_divergence_type": "forward_kl"}, "loss_type='nca_pair'"),
        ({"loss_type": "aot", "use_weighting": True}, "use_weighting with loss_type='aot'"),
        ({"loss_type": "exo_pair"}, "label_smoothing must be in (0, 1) with loss_type 'exo_pair'"),
        ({"loss_type": "robust", "label_smoothing": 0.5}, "label_smoothing must be in [0, 0.5)"),
        ({"loss_type": ["sigmoid", "ipo"], "loss_weights": [1.0]}, "one weight per loss_type"),
        ({"loss_type": "dpo"}, "loss_type 'dpo' is not one of"),
        ({"ld_alpha": 1.5}, "ld_alpha must be in [0, 1]"),
        ({"sync_ref_model": True, "precompute_ref_log_probs": True, "baseline": "dpo"}, "sync_ref_model with"),
    ],
)
def test_pairs_that_cannot_run_are_one_line_errors(tmp_path, options, named):
    with pytest.raises(ValueError) as err:
        config(tmp_path, **options)
    assert named in str(err.value) and "\n" not in str(err.value)


def test_an_explicit_kl_mode_none_needs_no_warning(tmp_path, recwarn):
    c = config(tmp_path, loss_type="bco_pair", kl_mode="none")
    assert c.kl_mode == "none" and not [w for w in recwarn if "kl_mode" in str(w.message)]
    assert config(tmp_path, loss_type="hinge").kl_mode == "tdpo2"  # a margin loss keeps the preset's term


def test_mix_into_is_the_tr_dpo_update():
    ref, policy = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    before = ref.weight.detach().clone()
    mix_into(ref, policy, 0.25)
    torch.testing.assert_close(ref.weight, 0.25 * policy.weight + 0.75 * before, atol=0, rtol=0)


def test_sync_ref_model_updates_the_reference_every_n_steps(tokenizer, tmp_path):
    args = config(
        tmp_path, baseline="dpo", sync_ref_model=True, ref_model_mixup_alpha=0.5, ref_model_sync_steps=2, max_steps=3
    )
    trainer = TIDPOTrainer(
        model=make_model(tokenizer, seed=1),
        ref_model=make_model(tokenizer, seed=0),
        args=args,
        train_dataset=sentiment_pairs(6),
        processing_class=tokenizer,
    )
    ref_before, seen = param_snapshot(trainer.ref_model), {}

    class Snapshot(TrainerCallback):
        def on_step_end(self, args, state, control, model=None, **kwargs):
            if state.global_step == 2:  # the policy after step 2 (before step 3 changes it)
                seen.update(param_snapshot(model))

    trainer.add_callback(Snapshot())
    trainer.train()
    ref_after = param_snapshot(trainer.ref_model)
    for name, value in ref_after.items():
        torch.testing.assert_close(value, 0.5 * seen[name] + 0.5 * ref_before[name], atol=1e-6, rtol=0, msg=name)


def test_sync_ref_model_refuses_a_peft_policy(tokenizer, tmp_path):
    from peft import LoraConfig

    with pytest.raises(ValueError, match="sync_ref_model cannot update the reference: the policy is a PEFT model"):
        TIDPOTrainer(
            model=make_model(tokenizer, seed=1),
            args=config(tmp_path, baseline="dpo", sync_ref_model=True),
            train_dataset=sentiment_pairs(2),
            processing_class=tokenizer,
            peft_config=LoraConfig(r=2, target_modules=["q_proj"]),
        )
