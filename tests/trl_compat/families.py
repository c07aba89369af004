"""Tiny models of several families, built in code, for the compatibility suite: Llama, Qwen2 (tied embeddings),
two mixtures of experts (Qwen3-MoE, Mixtral) whose configs declare a router load-balancing loss, and the other
families TRL's own tests train: Cohere2 (a logit scale, sliding layers), Olmo3 (sliding layers), GLM-4-MoE (shared
experts), GPT-OSS (attention sinks, a mixture of experts), LFM2 (convolution layers) and Nemotron-H (hybrid)."""

from __future__ import annotations

import torch
import transformers as hf
from transformers import MixtralConfig, MixtralForCausalLM, Qwen3MoeConfig, Qwen3MoeForCausalLM

from tests.tiny import make_model
from tests.training.helpers import qwen2_model


def _shared(tokenizer) -> dict:
    return {
        "vocab_size": len(tokenizer),
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 256,
        "pad_token_id": tokenizer.pad_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "bos_token_id": None,
        "tie_word_embeddings": False,
    }


def qwen3_moe_model(tokenizer, seed: int = 0, coef: float = 0.05) -> Qwen3MoeForCausalLM:
    torch.manual_seed(seed)
    config = Qwen3MoeConfig(
        **_shared(tokenizer),
        head_dim=8,
        moe_intermediate_size=16,
        intermediate_size=64,
        num_experts=4,
        num_experts_per_tok=2,
        decoder_sparse_step=1,
        router_aux_loss_coef=coef,
    )
    return Qwen3MoeForCausalLM(config)


def mixtral_model(tokenizer, seed: int = 0, coef: float = 0.05) -> MixtralForCausalLM:
    torch.manual_seed(seed)
    config = MixtralConfig(
        **_shared(tokenizer),
        intermediate_size=32,
        num_local_experts=4,
        num_experts_per_tok=2,
        router_aux_loss_coef=coef,
    )
    return MixtralForCausalLM(config)


def llama_model(tokenizer, seed: int = 0):
    return make_model(tokenizer, seed=seed)


SLIDING = {"sliding_window": 8, "layer_types": ["sliding_attention", "full_attention"]}


def _built(model_cls, config_cls, **extra):
    def build(tokenizer, seed: int = 0):
        torch.manual_seed(seed)
        return model_cls(config_cls(**{**_shared(tokenizer), "intermediate_size": 64, **extra}))

    build.__name__ = f"{model_cls.__name__}_builder"
    return build


cohere2_model = _built(hf.Cohere2ForCausalLM, hf.Cohere2Config, **SLIDING)
olmo3_model = _built(hf.Olmo3ForCausalLM, hf.Olmo3Config, **SLIDING)
glm4_moe_model = _built(
    hf.Glm4MoeForCausalLM, hf.Glm4MoeConfig, moe_intermediate_size=16, n_routed_experts=4, num_experts_per_tok=2,
    n_shared_experts=1, first_k_dense_replace=1, head_dim=8, n_group=1, topk_group=1,
)  # fmt: skip
gpt_oss_model = _built(
    hf.GptOssForCausalLM, hf.GptOssConfig, num_local_experts=4, num_experts_per_tok=2, head_dim=8,
    router_aux_loss_coef=0.05, **SLIDING,
)  # fmt: skip
lfm2_model = _built(hf.Lfm2ForCausalLM, hf.Lfm2Config, layer_types=["conv", "full_attention"])
nemotron_h_model = _built(hf.NemotronHForCausalLM, hf.NemotronHConfig)

FAMILIES = {
    "llama": llama_model,
    "qwen2": qwen2_model,
    "qwen3_moe": qwen3_moe_model,
    "mixtral": mixtral_model,
    "cohere2": cohere2_model,
    "olmo3": olmo3_model,
    "glm4_moe": glm4_moe_model,
    "gpt_oss": gpt_oss_model,
    "lfm2": lfm2_model,
    "nemotron_h": nemotron_h_model,
}

MOE = {"qwen3_moe": qwen3_moe_model, "mixtral": mixtral_model, "gpt_oss": gpt_oss_model}
