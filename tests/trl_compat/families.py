"""Tiny models of several families, built in code, for the compatibility suite: Llama, Qwen2 (tied embeddings)
and two mixtures of experts (Qwen3-MoE, Mixtral) whose configs declare a router load-balancing loss."""

from __future__ import annotations

import torch
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


FAMILIES = {"llama": llama_model, "qwen2": qwen2_model, "qwen3_moe": qwen3_moe_model, "mixtral": mixtral_model}
MOE = {"qwen3_moe": qwen3_moe_model, "mixtral": mixtral_model}
