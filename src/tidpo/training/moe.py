"""A mixture-of-experts model's router load-balancing loss, added to the loss as TRL 1.16's ``DPOTrainer`` adds it.

TRL's rule: a model whose (text) config has ``output_router_logits`` is a mixture-of-experts model that can return
its routers' logits; the coefficient is ``args.router_aux_loss_coef``, or when that is None the config's own
``router_aux_loss_coef`` (0 when it has none); the loss is on (``trainer.aux_loss_enabled``) when the model is such
a model and the coefficient is not 0. The policy's forward over the batch's ``2B`` rows is then asked for its
router logits (``output_router_logits=True``), and the model's own ``aux_loss`` (its family's load-balancing loss
over the real tokens) times the coefficient joins the loss; the reference is never asked. Logged as ``aux_loss``.

The aux loss reads every token's routing, so it is defined on whole rows: a shared prompt (run once for both
responses) would count the prompt's tokens once where TRL counts them twice; with it on, ``share_prompt``
falls back to whole rows (the routes line says so). Packed rows hold the same tokens, so the same loss.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from torch import Tensor, nn


def router_coefficient(args, model: nn.Module) -> float:
    """The load-balancing loss's weight for ``model`` (0 when it is off); a coefficient set for a model that
    returns no router logits is an error, as in TRL."""
    config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    coef = args.router_aux_loss_coef
    is_moe = hasattr(config, "output_router_logits")
    if coef and not is_moe:
        raise ValueError(
            f"router_aux_loss_coef={coef} but {type(model).__name__} is not a mixture-of-experts model that returns "
            "router logits: there is no load-balancing loss to weight; leave router_aux_loss_coef unset"
        )
    if not is_moe:
        return 0.0
    return float(getattr(config, "router_aux_loss_coef", 0.0) if coef is None else coef)


class RouterLoss:
    """Captures the ``aux_loss`` of the policy's forward over the batch (see the module docstring)."""

    def __init__(self, coefficient: float) -> None:
        self.coefficient = coefficient
        self.loss: Tensor | None = None

    @property
    def enabled(self) -> bool:
        return self.coefficient != 0.0

    @contextlib.contextmanager
    def capture(self, module: nn.Module) -> Iterator[RouterLoss]:
        """While active, ``module``'s first call is asked for its router logits and its ``aux_loss`` is kept in
        ``self.loss`` (later calls, e.g. a separate attribution forward, are left as they are)."""
        self.loss = None
        if not self.enabled:
            yield self
            return
        calls = []

        def before(mod, args, kwargs):
            calls.append(None)
            if len(calls) == 1:
                kwargs["output_router_logits"] = True
            return args, kwargs

        def after(mod, args, output):
            if len(calls) == 1 and self.loss is None:
                self.loss = getattr(output, "aux_loss", None)

        handles = [
            module.register_forward_pre_hook(before, with_kwargs=True),
            module.register_forward_hook(after),
        ]
        try:
            yield self
        finally:
            for handle in handles:
                handle.remove()
        if self.loss is None:
            raise RuntimeError(
                f"{type(module).__name__} returned no aux_loss with output_router_logits=True; set "
                "router_aux_loss_coef=0 to train without the load-balancing loss"
            )

    def added_to(self, loss: Tensor, log) -> Tensor:
        """``loss`` plus the coefficient times the captured aux loss (logged as ``aux_loss``); ``loss`` when off."""
        if self.loss is None:
            return loss
        aux = self.loss.to(loss.device, loss.dtype)
        log("aux_loss", aux.detach())
        return loss + self.coefficient * aux
