"""The preference losses, one module each: every module here that defines ``LOSS`` (a
:class:`tidpo.losses.loss_type.LossType`) is found and listed in :data:`LOSS_TYPES`, by name. A new loss is a new
module here (and its test against TRL); nothing else names it."""

from __future__ import annotations

import importlib
import pkgutil

from tidpo.losses.loss_type import LossType


def _discover() -> dict[str, LossType]:
    found = []
    for info in pkgutil.iter_modules(__path__):
        loss = getattr(importlib.import_module(f"{__name__}.{info.name}"), "LOSS", None)
        if isinstance(loss, LossType):
            found.append(loss)
    return {loss.name: loss for loss in sorted(found, key=lambda loss: loss.name)}


LOSS_TYPES: dict[str, LossType] = _discover()


def loss_spec(name: str) -> LossType:
    if name not in LOSS_TYPES:
        raise ValueError(f"loss_type {name!r} is not one of {', '.join(LOSS_TYPES)}")
    return LOSS_TYPES[name]
