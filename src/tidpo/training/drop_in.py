"""The trainer's arguments as TRL 1.16's ``DPOTrainer`` takes them (docs/trl.md, "Every DPOTrainer argument").

What a TRL user's call means here, decided before anything is loaded: a training set is required (an
evaluation-only trainer is asked for by name); a model given by name loads in float32 unless ``model_init_kwargs``
gives a dtype, with ``quantization_config`` passed to ``from_pretrained`` (a model already built cannot take it);
without ``processing_class`` the tokenizer is loaded from the model's ``name_or_path``; the model is tagged
``trl``, ``dpo`` (TRL's tags) and ``tidpo``.
"""

from __future__ import annotations

import logging

import torch

logger = logging.getLogger("tidpo")

# TRL's DPOTrainer._tag_names, then tidpo's own
MODEL_TAGS = ("trl", "dpo", "tidpo")


def check_datasets(train_dataset, eval_dataset, evaluation_only: bool) -> None:
    """A training set is required, as in TRL; ``evaluation_only=True`` builds a trainer that only evaluates."""
    if evaluation_only:
        if eval_dataset is None:
            raise ValueError("evaluation_only=True needs eval_dataset: the pairs to evaluate")
        if train_dataset is not None:
            raise ValueError("evaluation_only=True and train_dataset go against each other: drop one")
        return
    if train_dataset is None:
        raise ValueError(
            "train_dataset is required (as in TRL's DPOTrainer); to only evaluate, pass eval_dataset and "
            "evaluation_only=True"
        )


def init_kwargs(from_pretrained_kwargs: dict, model, quantization_config) -> dict:
    """``from_pretrained``'s keyword arguments for a model (and reference) given by name: float32 unless the
    arguments give a dtype (TRL's default; ``from_pretrained`` alone would keep the checkpoint's, often bf16), and
    ``quantization_config``. A model already built cannot be quantised here: one line says so."""
    kwargs = dict(from_pretrained_kwargs)
    if quantization_config is not None:
        if not isinstance(model, str):
            raise ValueError(
                "quantization_config applies when the model is loaded by name; this model is already built: "
                "pass its name (or folder) as model, or load it quantised yourself and drop quantization_config"
            )
        if "quantization_config" in kwargs:
            raise ValueError(
                "quantization_config is given both to the trainer and in args.model_init_kwargs: give it once"
            )
        kwargs["quantization_config"] = quantization_config
    kwargs.setdefault("dtype", torch.float32)
    return kwargs


def tokenizer_source(model, processing_class, trust_remote_code: bool):
    """``processing_class``, or the tokenizer of the model's ``name_or_path`` (as TRL loads it) for a model object;
    None for a model given by name (loaded with it). A multimodal processor is refused in one line."""
    from transformers import ProcessorMixin

    if isinstance(processing_class, ProcessorMixin):
        raise ValueError(
            f"processing_class is a processor ({type(processing_class).__name__}) for a vision-language model: "
            "tidpo trains text-only causal LMs; pass the tokenizer itself (processor.tokenizer) for text alone"
        )
    if processing_class is not None or isinstance(model, str):
        return processing_class
    from tidpo.models import load_pretrained_tokenizer

    name = getattr(getattr(model, "config", None), "_name_or_path", "") or ""
    if not name:
        raise ValueError(
            "processing_class is None and the model has no name_or_path to load its tokenizer from: pass the "
            "tokenizer as processing_class"
        )
    logger.info("tidpo: no processing_class; the tokenizer is loaded from the model's name_or_path %r", name)
    return load_pretrained_tokenizer(name, trust_remote_code=trust_remote_code)


def add_model_tags(model) -> None:
    """Tag the policy as TRL does (``trl``, ``dpo``) and as tidpo (``tidpo``); saved in the model card's metadata
    by ``Trainer.create_model_card`` / ``push_to_hub``."""
    add = getattr(model, "add_model_tags", None)
    if add is not None:
        add(list(MODEL_TAGS))


def for_streaming(args, train_dataset) -> None:
    """Streaming training data: batches are not dispatched from the main process (``dispatch_batches=False``, as
    TRL sets it; Accelerate's dispatch would concatenate the processes' batches)."""
    from datasets import IterableDataset

    if isinstance(train_dataset, IterableDataset):
        if args.accelerator_config.dispatch_batches is True:
            logger.warning("tidpo: dispatch_batches=True is turned off for streaming training data, as in TRL")
        args.accelerator_config.dispatch_batches = False


def refuse_streaming_reference(dataset, name: str) -> None:
    """Precomputed reference log-probs are written for every row before training; streaming data has no end."""
    from datasets import IterableDataset

    if isinstance(dataset, IterableDataset):
        raise ValueError(
            f"precompute_ref_log_probs=True scores every {name} pair before training, which streaming data (an "
            "IterableDataset) cannot give: load it as a Dataset, or set precompute_ref_log_probs=False"
        )
