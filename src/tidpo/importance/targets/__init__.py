"""The attribution targets, one module each: every module here that defines ``TARGET`` (an
:class:`tidpo.importance.target.AttributionTarget`) is listed in :data:`TARGETS`, by ``rank`` then name."""

from __future__ import annotations

import importlib
import pkgutil

from tidpo.importance.target import AttributionTarget


def _discover() -> dict[str, AttributionTarget]:
    found = []
    for info in pkgutil.iter_modules(__path__):
        target = getattr(importlib.import_module(f"{__name__}.{info.name}"), "TARGET", None)
        if isinstance(target, AttributionTarget):
            found.append(target)
    return {t.name: t for t in sorted(found, key=lambda t: (t.rank, t.name))}


TARGETS: dict[str, AttributionTarget] = _discover()
ATTRIBUTION_TARGETS = tuple(TARGETS)


def attribution_target_spec(name: str | AttributionTarget) -> AttributionTarget:
    """The table entry of ``name`` (or the entry itself)."""
    if isinstance(name, AttributionTarget):
        return name
    if name not in TARGETS:
        raise ValueError(f"attribution_target must be one of {ATTRIBUTION_TARGETS}, got {name!r}")
    return TARGETS[name]
