"""Loading the models the commands train and evaluate, checked first: a causal LM (not an encoder, not another
head), a tokenizer with an EOS token, and a reference that reads the policy's token ids.
"""

from __future__ import annotations

import json
from pathlib import Path

from tidpo.cli.common import CLIError, adapter_base, is_adapter_folder, load_causal_lm, resolve_model_path


def check_causal_lm(name_or_path: str) -> None:
    """Fail before any weight is loaded when the folder's ``config.json`` names no causal-LM architecture
    (``AutoModelForCausalLM`` would otherwise load, say, a ``BertModel`` folder as a randomly headed
    ``BertLMHeadModel``). An adapter folder is checked through its base model.

    Raises:
        CLIError: the folder is missing or holds another kind of model.
    """
    path = Path(resolve_model_path(name_or_path))
    if is_adapter_folder(str(path)):
        try:
            path = Path(resolve_model_path(adapter_base(str(path))))
        except CLIError:
            return  # load_causal_lm names the missing base
    if not (path / "config.json").is_file():
        return  # a Hub id: from_pretrained checks the class of what it downloads
    config = json.loads((path / "config.json").read_text())
    if config.get("architectures"):
        _check_architectures(name_or_path, config["architectures"])
    else:  # judged by its model type: an encoder (BERT & co.) would load as a headless "decoder"
        _check_model_type(name_or_path, config)


def _check_architectures(name_or_path: str, architectures: list[str]) -> None:
    """One of the classes ``config.json`` names is a causal-LM class."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    if not set(architectures) & set(MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.values()):
        raise CLIError(
            f"{name_or_path} is not a causal language model: its config.json names {', '.join(architectures)}; "
            f"pass a decoder-only model saved with AutoModelForCausalLM (e.g. LlamaForCausalLM)"
        )


def _check_model_type(name_or_path: str, config: dict) -> None:
    """A ``config.json`` without architectures: its model type has a causal-LM class and is no encoder."""
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
        MODEL_FOR_MASKED_LM_MAPPING_NAMES,
    )

    kind = config.get("model_type")
    encoder = kind in MODEL_FOR_MASKED_LM_MAPPING_NAMES and not config.get("is_decoder")
    if kind not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES or encoder:
        raise CLIError(
            f"{name_or_path} is not a causal language model: its config.json names no architectures and its "
            f"model_type {kind!r} is {'an encoder' if encoder else 'no causal LM type'}; pass a decoder-only model "
            "saved with AutoModelForCausalLM"
        )


def load_policy(name_or_path: str, init_kwargs: dict | None = None):
    """``(model, tokenizer)`` of a causal LM folder, built-in name or Hub id, checked for a usable EOS token."""
    check_causal_lm(name_or_path)
    model, tokenizer = load_causal_lm(name_or_path, init_kwargs)
    if tokenizer.eos_token_id is None:
        raise CLIError(
            f"the tokenizer of {name_or_path} has no eos_token; TI-DPO ends every response with it: set "
            f"eos_token in its tokenizer_config.json (for chat models, the token that ends an assistant turn)"
        )
    return model, tokenizer


def load_reference(name_or_path: str, model):
    """The ``--ref`` model, which must share the policy's vocabulary (both read the policy's token ids)."""
    check_causal_lm(name_or_path)
    ref = load_causal_lm(name_or_path)[0]
    ref_vocab, vocab = ref.get_input_embeddings().num_embeddings, model.get_input_embeddings().num_embeddings
    if ref_vocab != vocab:
        raise CLIError(
            f"--ref {name_or_path} has {ref_vocab} token embeddings but --model has {vocab}: the reference must use "
            f"the model's tokenizer (pass the model it was trained from)"
        )
    return ref
