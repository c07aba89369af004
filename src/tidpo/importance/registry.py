"""The tables that find their rows: a package whose every module may define one entry (an estimator, an attribution
target), so that a new row is a new module and nothing else names it."""

from __future__ import annotations

import importlib
import pkgutil


def discover(package: str, path, attribute: str, kind: type) -> dict:
    """``{entry.name: entry}`` of every module of ``package`` (at ``path``) whose ``attribute`` is a ``kind``, by the
    entry's ``rank`` then its name."""
    found = []
    for info in pkgutil.iter_modules(path):
        entry = getattr(importlib.import_module(f"{package}.{info.name}"), attribute, None)
        if isinstance(entry, kind):
            found.append(entry)
    return {entry.name: entry for entry in sorted(found, key=lambda e: (e.rank, e.name))}
