"""The anchor decode route: the static cache (and, on a GPU, its CUDA graph) draws today's tokens token for token,
against ``sample_from_prompt``'s dynamic loop and against ``generate``; the route is resolved once, ``auto`` picks
the dynamic loop on a CPU without calling it a fallback, and an explicit route that cannot be served is refused."""

import pytest
import torch
from transformers import GenerationConfig

from tests.device import current_device
from tests.tiny import make_model
from tests.training.helpers import BUILDERS, assert_same_step, make_trainer, one_sgd_step
from tidpo.training.anchors import sample_anchors
from tidpo.training.decode import sample_from_prompt
from tidpo.training.prompt_cache import prompt_forward
from tidpo.training.routes import RouteError

TEXTS = ["Human: tell me about cats \n Assistant:", "hi", "Human: what is the weather today ? \n Assistant:", "ok"]
DECODES = ["static", "graph"] if current_device().type == "cuda" else ["static"]


def _prompts(tokenizer):
    rows = [tokenizer(t)["input_ids"] for t in TEXTS]
    width = max(map(len, rows))
    ids = torch.tensor([[tokenizer.pad_token_id] * (width - len(r)) + r for r in rows])
    mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows])
    return ids, mask


def _config(tokenizer, do_sample, n=12, temperature=0.8, top_k=10, top_p=0.9):
    return GenerationConfig(
        do_sample=do_sample,
        top_k=top_k,
        top_p=top_p,
        temperature=temperature,
        max_new_tokens=n,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )


def _model(tokenizer, arch, attn, seed=3):
    model = BUILDERS[arch](tokenizer, seed=seed).eval()
    model.config._attn_implementation = attn
    return model


@pytest.mark.parametrize("decode", DECODES)
@pytest.mark.parametrize("attn", ["sdpa", "eager"])
@pytest.mark.parametrize("arch", sorted(BUILDERS))
@pytest.mark.parametrize("do_sample", [True, False], ids=["sampled", "greedy"])
def test_the_static_decode_draws_the_dynamic_loops_tokens(tokenizer, arch, attn, do_sample, decode):
    model = _model(tokenizer, arch, attn)
    ids, mask = _prompts(tokenizer)
    config = _config(tokenizer, do_sample, temperature=1.5, top_k=0, top_p=1.0)  # flat draws: many branches
    with torch.no_grad():
        prompt = prompt_forward(model, ids, mask)
    for seed in range(4):
        torch.manual_seed(seed)
        dynamic = sample_from_prompt(model, prompt, config)
        torch.manual_seed(seed)
        static = sample_from_prompt(model, prompt, config, decode=decode)
        assert dynamic.shape == (4, 12) and torch.equal(static, dynamic), seed


@pytest.mark.parametrize("decode", DECODES)
@pytest.mark.parametrize("do_sample", [True, False], ids=["sampled", "greedy"])
def test_whole_rows_with_the_static_decode_equal_generate(tokenizer, do_sample, decode):
    model = make_model(tokenizer, seed=3).eval()
    ids, mask = _prompts(tokenizer)
    config = _config(tokenizer, do_sample)
    for seed in range(3):
        torch.manual_seed(seed)
        via_generate = sample_anchors(model, ids, mask, config)
        torch.manual_seed(seed)
        via_static = sample_anchors(model, ids, mask, config, decode=decode)
        for field in ("input_ids", "attention_mask", "completion_mask", "tokens", "token_mask"):
            assert torch.equal(getattr(via_static, field), getattr(via_generate, field)), (seed, field)


def test_the_static_decode_stops_when_every_row_has_ended(tokenizer):
    model = make_model(tokenizer, seed=3).eval()
    model.lm_head.weight.data.zero_()
    model.lm_head.bias = torch.nn.Parameter(torch.zeros(model.config.vocab_size))
    model.lm_head.bias.data[tokenizer.eos_token_id] = 1.0  # EOS every time
    ids, mask = _prompts(tokenizer)
    with torch.no_grad():
        prompt = prompt_forward(model, ids, mask)
    out = sample_from_prompt(model, prompt, _config(tokenizer, False), decode="static")
    assert out.tolist() == [[tokenizer.eos_token_id]] * 4


def test_a_training_step_with_the_static_decode_equals_the_dynamic_one(tokenizer, tmp_path):
    steps = {}
    for decode in ("dynamic", "static"):
        trainer, _ = one_sgd_step(
            tokenizer,
            tmp_path / decode,
            anchor_decode=decode,
            share_prompt=False,
            triplet_weight=5.0,
            triplet_margin=0.5,
        )
        assert trainer.routes.anchor_decode == decode and f"anchor_decode={decode}" in str(trainer.routes)
        steps[decode] = trainer
    assert steps["dynamic"].state.log_history[0]["triplet/loss"] > 0
    assert_same_step(steps["static"], steps["dynamic"])


@pytest.mark.skipif(current_device().type == "cuda", reason="auto picks the graph on a GPU")
def test_auto_is_the_dynamic_loop_on_a_cpu_and_graph_is_refused_there(tokenizer, tmp_path):
    trainer = make_trainer(tokenizer, tmp_path, triplet_weight=0.1)
    assert trainer.routes.anchor_decode == "dynamic" and trainer.routes.fallbacks == ()
    with pytest.raises(RouteError, match="anchor_decode='graph' cannot be served: the policy is on cpu"):
        make_trainer(tokenizer, tmp_path, triplet_weight=0.1, anchor_decode="graph")
    assert make_trainer(tokenizer, tmp_path, triplet_weight=0.0).routes.anchor_decode == "none"


def test_an_explicit_static_decode_the_model_cannot_serve_is_refused(tokenizer, tmp_path, monkeypatch):
    monkeypatch.setattr("tidpo.training.routes.static_decode_problem", lambda model: "no static cache here")
    with pytest.raises(RouteError, match="anchor_decode='static' cannot be served: no static cache here; set"):
        make_trainer(tokenizer, tmp_path, triplet_weight=0.1, anchor_decode="static")


def test_an_unknown_decode_is_refused(tmp_path):
    from tests.training.helpers import config

    with pytest.raises(ValueError, match="anchor_decode='fast' is not one of"):
        config(tmp_path, anchor_decode="fast")
