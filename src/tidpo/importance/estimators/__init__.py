"""The token-importance estimators, one module each: every module here that defines ``ESTIMATOR`` (an
:class:`tidpo.importance.estimator.Estimator`) is found and listed in :data:`ESTIMATORS`, by ``rank`` then name. A
new estimator is a new module here (and its test); nothing else names it."""

from __future__ import annotations

import importlib
import pkgutil

from tidpo.importance.estimator import Estimator


def _discover() -> dict[str, Estimator]:
    found = []
    for info in pkgutil.iter_modules(__path__):
        estimator = getattr(importlib.import_module(f"{__name__}.{info.name}"), "ESTIMATOR", None)
        if isinstance(estimator, Estimator):
            found.append(estimator)
    return {e.name: e for e in sorted(found, key=lambda e: (e.rank, e.name))}


ESTIMATORS: dict[str, Estimator] = _discover()
