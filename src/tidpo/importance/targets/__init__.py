"""The attribution targets, one module each: every module here that defines ``TARGET`` (an
:class:`tidpo.importance.target.AttributionTarget`) is listed in :data:`TARGETS`, by ``rank`` then name."""

from __future__ import annotations

from tidpo.importance.registry import discover
from tidpo.importance.target import AttributionTarget

TARGETS: dict[str, AttributionTarget] = discover(__name__, __path__, "TARGET", AttributionTarget)
ATTRIBUTION_TARGETS = tuple(TARGETS)


def attribution_target_spec(name: str | AttributionTarget) -> AttributionTarget:
    """The table entry of ``name`` (or the entry itself)."""
    if isinstance(name, AttributionTarget):
        return name
    if name not in TARGETS:
        raise ValueError(f"attribution_target must be one of {ATTRIBUTION_TARGETS}, got {name!r}")
    return TARGETS[name]
