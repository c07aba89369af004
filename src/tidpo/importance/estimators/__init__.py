"""The token-importance estimators, one module each: every module here that defines ``ESTIMATOR`` (an
:class:`tidpo.importance.estimator.Estimator`) is found and listed in :data:`ESTIMATORS`, by ``rank`` then name. A
new estimator is a new module here (and its test); nothing else names it."""

from __future__ import annotations

from tidpo.importance.estimator import Estimator
from tidpo.importance.registry import discover

ESTIMATORS: dict[str, Estimator] = discover(__name__, __path__, "ESTIMATOR", Estimator)
