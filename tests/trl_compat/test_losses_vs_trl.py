"""Every TRL 1.16 ``loss_type`` and loss option, in tidpo's limit (uniform weights, kl_mode='none', γ = 0), against
TRL's own ``DPOTrainer`` on the same batch of the same tiny models (policy ≠ reference): the loss and the gradient of
every policy parameter. Tolerance: 2e-5 absolute plus 1e-4 relative (the two trainers sum the same float32 per-token
log-probs in a different order). Each case prints its largest absolute differences (``pytest -s``; docs/trl.md)."""

import pytest
import torch

from tests.tiny import make_model
from tests.training.helpers import varied_pairs
from tidpo import TIDPOTrainer
from tidpo.training.trl_compat import from_dpo_config

trl = pytest.importorskip("trl")

CASES = {
    **{
        name: {"loss_type": [name]}
        for name in (
            "sigmoid",
            "hinge",
            "ipo",
            "nca_pair",
            "bco_pair",
            "sppo_hard",
            "aot",
            "aot_unpaired",
            "apo_zero",
            "apo_down",
            "sft",
            "sigmoid_norm",
        )
    },
    "exo_pair": {"loss_type": ["exo_pair"], "label_smoothing": 1e-3},
    "robust": {"loss_type": ["robust"], "label_smoothing": 0.1},
    "discopop": {"loss_type": ["discopop"], "discopop_tau": 0.05},
    "aot+label_smoothing": {"loss_type": ["aot"], "label_smoothing": 0.2},
    "aot_unpaired+label_smoothing": {"loss_type": ["aot_unpaired"], "label_smoothing": 0.2},
    "list (MPO)": {"loss_type": ["sigmoid", "bco_pair", "sft"], "loss_weights": [0.8, 0.2, 1.0]},
    "list, default weights": {"loss_type": ["hinge", "ipo"]},
    "use_weighting (WPO)": {"loss_type": ["sigmoid"], "use_weighting": True},
    # (not with sft or hinge: TRL 1.16 itself fails there, its in-place WPO product breaks their autograd)
    "use_weighting + list": {"loss_type": ["ipo", "sigmoid"], "loss_weights": [1.0, 0.3], "use_weighting": True},
    "ld_alpha": {"loss_type": ["sigmoid"], "ld_alpha": 0.3},
    "ld_alpha + aot": {"loss_type": ["aot"], "ld_alpha": 0.5},
    "forward_kl": {"loss_type": ["sigmoid"], "f_divergence_type": "forward_kl"},
    "js_divergence": {"loss_type": ["hinge"], "f_divergence_type": "js_divergence"},
    "alpha_divergence": {"loss_type": ["ipo"], "f_divergence_type": "alpha_divergence", "f_alpha_divergence_coef": 0.3},
    "alpha_divergence a=1": {
        "loss_type": ["sigmoid"],
        "f_divergence_type": "alpha_divergence",
        "f_alpha_divergence_coef": 1.0,
    },
}
# TRL's trainer reads these options from attributes it sets in __init__; one trainer serves every case
TRL_ATTRIBUTES = {
    "loss_type": "loss_types",
    "label_smoothing": "label_smoothing",
    "use_weighting": "use_weighting",
    "ld_alpha": "ld_alpha",
    "f_divergence_type": "f_divergence_type",
    "f_alpha_divergence_coef": "f_alpha_divergence_coef",
}
PAIRS = 4


def _dpo_config(path, **options):
    return trl.DPOConfig(
        output_dir=str(path),
        beta=0.1,
        max_length=64,
        report_to="none",
        use_cpu=True,
        gradient_checkpointing=False,
        bf16=False,
        **options,
    )


@pytest.fixture(scope="module")
def trl_side(tmp_path_factory):
    """TRL's trainer (built with use_weighting so that its head returns WPO's log Σ p²) and its batch."""
    from tests.tiny import make_tokenizer

    tokenizer = make_tokenizer()
    path = tmp_path_factory.mktemp("trl")
    theirs = trl.DPOTrainer(
        model=make_model(tokenizer, seed=1),
        ref_model=make_model(tokenizer, seed=0),
        args=_dpo_config(path, use_weighting=True),
        train_dataset=varied_pairs(PAIRS),
        processing_class=tokenizer,
    )
    batch = theirs.data_collator([theirs.train_dataset[i] for i in range(PAIRS)])
    return tokenizer, theirs, batch


def _set_trl_options(theirs, config):
    for option, attribute in TRL_ATTRIBUTES.items():
        setattr(theirs, attribute, getattr(config, option))
    theirs.loss_weights = config.loss_weights or [1.0] * len(config.loss_type)
    theirs.args.discopop_tau = config.discopop_tau


def _loss_and_grads(trainer, batch):
    trainer.model.train()
    trainer.model.zero_grad(set_to_none=True)
    loss = trainer.compute_loss(trainer.model, batch)
    loss.backward()
    grads = {name: p.grad.detach().clone() for name, p in trainer.model.named_parameters() if p.grad is not None}
    return loss.detach(), grads


@pytest.mark.parametrize("case", list(CASES))
def test_loss_and_gradients_equal_trl(trl_side, tmp_path, case):
    tokenizer, theirs, trl_batch = trl_side
    config = _dpo_config(tmp_path / "case", **CASES[case])
    _set_trl_options(theirs, config)
    ours = TIDPOTrainer(
        model=make_model(tokenizer, seed=1),
        ref_model=make_model(tokenizer, seed=0),
        args=from_dpo_config(config, baseline="dpo"),
        train_dataset=varied_pairs(PAIRS),
        processing_class=tokenizer,
    )
    batch = ours.data_collator([ours.train_dataset[i] for i in range(PAIRS)])
    assert batch["input_ids"].tolist() == trl_batch["input_ids"].tolist()
    our_loss, our_grads = _loss_and_grads(ours, batch)
    trl_loss, trl_grads = _loss_and_grads(theirs, trl_batch)
    assert our_grads.keys() == trl_grads.keys() and our_grads
    loss_diff = (our_loss - trl_loss).abs().item()
    grad_diff = max((our_grads[n] - trl_grads[n]).abs().max().item() for n in our_grads)
    print(
        f"\nTRL oracle | {case} | loss {trl_loss.item():.6f} | max |Δloss| {loss_diff:.2e} "
        f"| max |Δgrad| {grad_diff:.2e}"
    )
    torch.testing.assert_close(our_loss, trl_loss, atol=2e-5, rtol=1e-4)
    assert max(g.abs().max().item() for g in trl_grads.values()) > 1e-4  # a gradient that could be wrong
    for name in our_grads:
        torch.testing.assert_close(our_grads[name], trl_grads[name], atol=2e-5, rtol=1e-4, msg=name)
