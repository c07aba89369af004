"""The frozen reference policy π_ref: an explicit model, a frozen copy of the policy, the policy with its
LoRA/PEFT adapters disabled (no copy at all), or, for a PEFT model that arrives with a trained adapter, that adapter's
frozen copy (the adapter :data:`REF_ADAPTER`, as TRL does: the base model alone is not the policy's start)."""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator

import torch
from torch import nn

REF_ADAPTER = "ref"


def is_peft_model(model: nn.Module) -> bool:
    """True for a ``peft.PeftModel`` (checked without importing peft when it is not loaded)."""
    return hasattr(model, "disable_adapter") and hasattr(model, "peft_config")


def disable_dropout(model: nn.Module) -> None:
    """Set every dropout probability in ``model`` to 0 (``nn.Dropout`` modules and ``attention_dropout`` floats)."""
    for module in model.modules():
        if isinstance(module, nn.Dropout):
            module.p = 0.0
        if isinstance(getattr(module, "attention_dropout", None), float):
            module.attention_dropout = 0.0


def frozen_copy(model: nn.Module) -> nn.Module:
    """A deep copy of ``model`` in eval mode with ``requires_grad`` off everywhere."""
    ref = copy.deepcopy(model)
    ref.eval()
    ref.requires_grad_(False)
    return ref


@contextlib.contextmanager
def reference_model(policy: nn.Module, ref: nn.Module | None) -> Iterator[nn.Module]:
    """Yield the module to call as π_ref, under ``torch.no_grad``.

    ``ref`` is used when given; otherwise ``policy`` must be a PEFT model, whose adapters are disabled for the
    duration (so π_ref is the base model the adapters were added to).
    """
    with torch.no_grad():
        if ref is not None:
            yield ref
            return
        if not is_peft_model(policy):
            raise ValueError("no reference model: pass ref_model, or train a PEFT model (adapters disabled = π_ref)")
        if REF_ADAPTER in policy.peft_config:
            with _adapter(policy, REF_ADAPTER):
                yield policy
            return
        with policy.disable_adapter():
            yield policy


@contextlib.contextmanager
def _adapter(policy: nn.Module, name: str) -> Iterator[None]:
    """``name`` the adapter every PEFT layer runs for the duration, then the one each ran. The layers' active
    adapter is set directly: PEFT's ``set_adapter`` would also move ``requires_grad`` (and sharded parameters must
    keep theirs), while only the forward's choice of weights is wanted here."""
    layers = [m for m in policy.modules() if "_active_adapter" in vars(m) or hasattr(type(m), "_active_adapter")]
    before = [layer._active_adapter for layer in layers]
    for layer, active in zip(layers, before, strict=True):
        layer._active_adapter = name if isinstance(active, str) else [name]
    try:
        yield
    finally:
        for layer, active in zip(layers, before, strict=True):
            layer._active_adapter = active


def add_reference_adapter(model: nn.Module) -> None:
    """A frozen copy of the PEFT ``model``'s active (trained) adapter under the name :data:`REF_ADAPTER`: π_ref for
    a model that arrives with an adapter, so that training starts at log-ratio 0, as in TRL. Call it before
    sharding the model (the trainer refuses a sharded one without it).

    Raises:
        ValueError: ``model`` is already sharded (its new adapter would not be).
    """
    from torch.distributed.tensor import DTensor

    if any(isinstance(p, DTensor) for p in model.parameters()):
        raise ValueError(
            "a sharded PEFT model arrived without a reference: call tidpo.training.reference.add_reference_adapter("
            "model) before sharding it (π_ref is then a frozen copy of its adapter, as in TRL), or pass ref_model"
        )
    trained = model.active_adapter
    model.add_adapter(REF_ADAPTER, model.peft_config[trained])
    model.set_adapter(trained)  # the trained adapter stays the active, trainable one
    marker, copy_marker = f".{trained}.", f".{REF_ADAPTER}."
    with torch.no_grad():
        for name, param in model.named_parameters():
            if marker in name:
                model.get_parameter(name.replace(marker, copy_marker)).copy_(param)
    for name, param in model.named_parameters():
        if copy_marker in name:
            param.requires_grad_(False)


class LiveReference:
    """The reference route ``live``: π_ref runs on every batch, in the step's layout and head.

    Args:
        ref_model: the explicit reference, or None for the policy with its adapters disabled.
        layout: the step's layout (see :mod:`tidpo.training.layouts`); its head computes the statistics.
    """

    name = "live"

    def __init__(self, ref_model: nn.Module | None, layout):
        self.ref_model, self.layout = ref_model, layout

    def module(self, policy: nn.Module):
        """Context yielding the module to call as π_ref, under ``torch.no_grad``."""
        return reference_model(self.layout.unwrap(policy), self.ref_model)

    def forward(self, policy: nn.Module, batch):
        """π_ref's features on the layout's view of the batch."""
        with self.module(policy) as ref:
            return self.layout.ref_forward(ref, batch)

    def token_stats(self, policy_features, ref_features, inputs, with_kl: bool, summary: bool = False):
        return self.layout.head.token_stats(
            policy_features, ref_features, inputs["input_ids"], inputs["completion_mask"], with_kl, summary
        )

    def per_token_logps(self, policy: nn.Module, inputs):
        """``(2B, L)`` reference log-probs of a collated batch (what ``precompute_ref_log_probs`` caches)."""
        features = self.forward(policy, self.layout.split(inputs))
        return self.token_stats(features, None, inputs, with_kl=False).per_token_logps


class CachedReference(LiveReference):
    """The reference route ``cached`` (``precompute_ref_log_probs``): the batch carries π_ref's per-token log-probs
    (``ref_token_logps``, computed once before training), so no reference runs in the step."""

    name = "cached"

    def __init__(self, layout):
        super().__init__(None, layout)

    def forward(self, policy: nn.Module, batch) -> None:
        return None

    def token_stats(self, policy_features, ref_features, inputs, with_kl: bool, summary: bool = False):
        if with_kl:
            raise ValueError("a cached reference has no distributions to take the KL with")
        stats = super().token_stats(policy_features, None, inputs, with_kl=False, summary=summary)
        stats.ref_per_token_logps = inputs["ref_token_logps"] * inputs["completion_mask"]
        return stats


def policy_and_reference(
    model: nn.Module, ref_model: nn.Module | None, peft_config, seed: int, no_dropout: bool, training: bool = True
):
    """The policy (wrapped with ``peft_config`` if given, adapters initialised from ``seed`` as Trainer's
    ``model_init`` would) and the frozen reference: ``ref_model``, else a frozen copy of the policy, else None for a
    PEFT policy (its adapters disabled give π_ref). A policy that arrives wrapped with a trained adapter is trained
    against a frozen copy of that adapter (TRL's rule: training starts at log-ratio 0); one only evaluated
    (``training=False``) is measured against its base model, the start its adapter was trained from. Dropout is
    turned off in both with ``no_dropout``."""
    arrived_wrapped = peft_config is None and ref_model is None and is_peft_model(model)
    if training and arrived_wrapped and REF_ADAPTER not in model.peft_config:
        add_reference_adapter(model)
    if peft_config is not None:
        from peft import get_peft_model
        from transformers import set_seed

        set_seed(seed)
        model = get_peft_model(model, peft_config)
    if ref_model is None and not is_peft_model(model):
        ref_model = frozen_copy(model)
    for module in (model, ref_model) if no_dropout else ():
        if module is not None:
            disable_dropout(module)
    if ref_model is not None:
        ref_model.eval().requires_grad_(False)
    return model, ref_model
