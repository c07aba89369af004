"""The response log-prob attribution target (``attribution_target="response_logp"``, beyond the paper)."""

from __future__ import annotations

import pytest
import torch

from tests.tiny import make_model, make_tokenizer, one_torch_thread
from tests.training.helpers import collated_batch, one_sgd_step, varied_pairs
from tidpo.eval.explain import explain_batch
from tidpo.importance import ATTRIBUTION_TARGETS, response_logp_target
from tidpo.training.routes import RouteError


@pytest.fixture(autouse=True)
def single_thread():
    with one_torch_thread():
        yield


def manual_response_logp_attributions(model, batch) -> torch.Tensor:
    """‖∂(Σ_response log p)/∂e_i‖₁ row by row, each row alone (no batching, no padding tricks)."""
    out = torch.zeros(batch["input_ids"].shape)
    for row in range(batch["input_ids"].shape[0]):
        length = int(batch["attention_mask"][row].sum())
        ids = batch["input_ids"][row, :length].unsqueeze(0)
        response = batch["completion_mask"][row, :length]
        embeds = model.get_input_embeddings()(ids).detach().requires_grad_(True)
        logprobs = torch.log_softmax(model(inputs_embeds=embeds).logits[0].float(), -1)
        target = sum(logprobs[t - 1, ids[0, t]] for t in range(1, length) if response[t])
        (grad,) = torch.autograd.grad(target, embeds)
        out[row, :length] = grad[0].abs().sum(-1)
    return out


def test_the_target_sums_response_log_probs_only():
    logps = torch.tensor([[-1.0, -2.0, -3.0], [-4.0, -5.0, -6.0]])
    mask = torch.tensor([[0, 1, 1], [1, 0, 0]])
    assert float(response_logp_target(logps, mask)) == pytest.approx(-2 - 3 - 4)


def test_explain_attributions_equal_the_gradient_of_each_rows_response_log_prob():
    tokenizer = make_tokenizer()
    model = make_model(tokenizer, seed=0).eval()
    batch = collated_batch(tokenizer, n=3)
    result = explain_batch(model, batch, target="response_logp")
    expected = manual_response_logp_attributions(model, batch)
    torch.testing.assert_close(result.attributions, expected, atol=1e-5, rtol=1e-4)
    default = explain_batch(model, batch)
    assert not torch.allclose(default.attributions, result.attributions)  # a different target, other numbers
    with pytest.raises(ValueError, match="target must be one of"):
        explain_batch(model, batch, target="logit")


@pytest.mark.parametrize(
    "routes",
    [
        {"chunked_logits": True, "attribution": "fused"},
        {"chunked_logits": False, "attribution": "fused"},
        {"chunked_logits": True, "attribution": "separate", "padding_free": True},
    ],
    ids=["chunked-fused", "full-fused", "chunked-separate-packed"],
)
def test_training_routes_agree_on_the_variant(tmp_path, routes):
    """Fused and separate, chunked and full logits, packed and whole rows: one step, the same numbers."""
    tokenizer = make_tokenizer()
    common = {"attribution_target": "response_logp", "importance_mix": 1.0, "share_prompt": False}
    naive, _ = one_sgd_step(tokenizer, tmp_path / "naive", data=varied_pairs(4), chunked_logits=False,
                            attribution="separate", **common)  # fmt: skip
    other, _ = one_sgd_step(tokenizer, tmp_path / "other", data=varied_pairs(4), **routes, **common)
    for key in ("loss", "weights/max", "rewards/margins"):
        assert other.state.log_history[0][key] == pytest.approx(naive.state.log_history[0][key], abs=1e-5), key
    default, _ = one_sgd_step(tokenizer, tmp_path / "default", data=varied_pairs(4), importance_mix=1.0,
                              share_prompt=False)  # fmt: skip
    assert default.state.log_history[0]["weights/max"] != pytest.approx(naive.state.log_history[0]["weights/max"])


def test_shared_prompt_falls_back_or_refuses(tmp_path):
    tokenizer = make_tokenizer()
    trainer, _ = one_sgd_step(tokenizer, tmp_path / "auto", attribution_target="response_logp", max_steps=1)
    assert trainer.routes.layout == "whole rows"
    assert any("response_logp" in f for f in trainer.routes.fallbacks)
    with pytest.raises(RouteError, match="share_prompt=True cannot be served.*response_logp"):
        one_sgd_step(tokenizer, tmp_path / "explicit", attribution_target="response_logp", share_prompt=True)


def test_the_config_and_the_cli_offer_the_same_targets(tmp_path):
    from tidpo.cli.explain import make_parser
    from tidpo.training.config import TIDPOConfig

    action = next(a for a in make_parser()._actions if a.dest == "attribution_target")
    assert tuple(action.choices) == ATTRIBUTION_TARGETS
    with pytest.raises(ValueError, match="attribution_target"):
        TIDPOConfig(output_dir=str(tmp_path), attribution_target="eos")
