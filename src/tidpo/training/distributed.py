"""What the training engines (accelerate's DDP, FSDP2, DeepSpeed ZeRO) change for a TI-DPO step.

The step itself is the same under every engine; these helpers cover the few places where TI-DPO touches a model
outside its forward (docs/distributed.md lists the traps):

- :func:`sharding_engine`: the engine that shards parameters (FSDP, ZeRO-3), if any. The chunked head multiplies
  hidden states by the LM head's weight outside the head's forward, where a sharded weight is only a shard, so
  the routes fall back to the model's own logits there (:func:`tidpo.training.routes.resolve_routes`).
- :func:`prepare_reference`: the frozen reference, sharded like the policy under FSDP2 and ZeRO-3 (accelerate's
  ``prepare_model(..., evaluation_mode=True)`` would keep a whole copy on every rank).
- :class:`AnchorSampling`: each anchor draw under its own seed, ``(seed, rank, step, draw)``, so every rank draws
  its own anchors, reproducibly and independently of every other use of the random state; under ZeRO-3 the
  parameters are gathered for ``generate``, and under FSDP2 the root's own
  parameters are unsharded.

The embedding lookup of the attribution is taken by a forward hook inside the model's own forward
(:func:`tidpo.training.layouts.captured_embeddings`), and the separate attribution runs on the unwrapped module,
so neither DDP's reducer nor FSDP2's sharding sees a call from outside a forward.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable, Iterator

import torch
from torch import nn


def has_sharded_parameters(model: nn.Module) -> bool:
    """True when ``model`` holds ``DTensor`` parameters (``torch.distributed.fsdp.fully_shard`` was applied)."""
    from torch.distributed.tensor import DTensor

    return any(isinstance(p, DTensor) for p in model.parameters())


def _zero_stage(accelerator) -> int:
    plugin = getattr(accelerator.state, "deepspeed_plugin", None)
    return int(plugin.zero_stage) if plugin is not None else 0


def sharding_engine(accelerator, models: dict[str, nn.Module]) -> str | None:
    """The name of the engine that shards the parameters of ``models`` (or will, when the trainer prepares them),
    or None when every rank holds whole parameters."""
    from accelerate.utils import DistributedType

    if accelerator.distributed_type == DistributedType.FSDP:
        return "FSDP2" if accelerator.is_fsdp2 else "FSDP"
    if _zero_stage(accelerator) == 3:
        return "DeepSpeed ZeRO-3"
    if any(has_sharded_parameters(m) for m in models.values()):
        return "fully_shard"
    return None


def prepare_reference(accelerator, ref_model: nn.Module | None) -> nn.Module | None:
    """The explicit reference model, placed and sharded for ``accelerator``'s engine, in eval mode, no gradients."""
    if ref_model is None:
        return None
    if accelerator.is_fsdp2 and not has_sharded_parameters(ref_model):
        from accelerate.utils.fsdp_utils import fsdp2_prepare_model

        ref_model = fsdp2_prepare_model(accelerator, ref_model)
    elif _zero_stage(accelerator) == 3:
        ref_model = _zero3_reference(accelerator, ref_model)
    elif not has_sharded_parameters(ref_model):
        ref_model = accelerator.prepare_model(ref_model, evaluation_mode=True)
    return ref_model.eval().requires_grad_(False)


def _zero3_reference(accelerator, ref_model: nn.Module) -> nn.Module:
    """A ZeRO-3 inference engine for the reference: its parameters partitioned like the policy's, no optimizer."""
    import copy

    import deepspeed

    config = copy.deepcopy(accelerator.state.deepspeed_plugin.deepspeed_config)
    for key in ("optimizer", "scheduler"):
        config.pop(key, None)
    config["train_micro_batch_size_per_gpu"] = config.get("train_micro_batch_size_per_gpu") or 1
    config.pop("train_batch_size", None)  # recomputed by DeepSpeed from the micro batch and the world size
    engine, *_ = deepspeed.initialize(model=ref_model, config=config)
    return engine.module if hasattr(engine, "module") else engine


def anchor_seed(seed: int, rank: int, step: int, draw: int) -> int:
    """A 63-bit seed for one anchor draw: distinct per rank, step and draw, the same on every run with ``seed``."""
    digest = hashlib.sha256(f"tidpo-anchors/{seed}/{rank}/{step}/{draw}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


class AnchorSampling:
    """The context each anchor ``generate`` runs in (a callable: ``with sampling(model): ...``).

    Args:
        seed: the run's seed.
        rank: this process's index.
        step: returns the current optimiser step (``trainer.state.global_step``).
        gather: ``model -> context`` that makes whole parameters available to ``generate``
            (:func:`generation_gather`), or None.
    """

    def __init__(self, seed: int, rank: int, step: Callable[[], int], gather=None):
        self.seed, self.rank, self.step, self.gather = seed, rank, step, gather
        self._draws, self._draw_step = 0, None

    @contextlib.contextmanager
    def __call__(self, model: nn.Module) -> Iterator[None]:
        step = self.step()
        if step != self._draw_step:
            self._draws, self._draw_step = 0, step
        seed = anchor_seed(self.seed, self.rank, step, self._draws)
        self._draws += 1
        devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
        gathered = self.gather(model) if self.gather is not None else contextlib.nullcontext()
        with torch.random.fork_rng(devices=devices), gathered:
            torch.manual_seed(seed)
            yield


def generation_gather(accelerator):
    """``model -> context`` that makes whole parameters available to ``generate``: ZeRO-3's gathered parameters;
    under FSDP2 the root module's own parameters unsharded (a PEFT model's ``generate`` calls the inner model's
    forward, so the root's pre-forward hook, which would unshard the embedding and the head, never runs; the
    decoder layers unshard themselves)."""
    zero3 = _zero_stage(accelerator) == 3

    @contextlib.contextmanager
    def gather(model: nn.Module) -> Iterator[None]:
        if zero3:
            import deepspeed

            with deepspeed.zero.GatheredParameters(list(model.parameters()), modifier_rank=None):
                yield
            return
        from torch.distributed.fsdp import FSDPModule

        if not isinstance(model, FSDPModule):
            yield
            return
        model.unshard()
        try:
            yield
        finally:
            model.reshard()

    return gather
