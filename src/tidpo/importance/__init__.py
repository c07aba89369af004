"""Token importance for TI-DPO (arXiv 2505.19653v3, Eqs. 5–8): gradient attribution, Gaussian prior, hybrid weights."""

from tidpo.importance.attribution import (
    attribution_target,
    embedding_attributions,
    response_logp_target,
    separate_attributions,
    target_attributions,
)
from tidpo.importance.prior import gaussian_prior
from tidpo.importance.targets import ATTRIBUTION_TARGETS, TARGETS, attribution_target_spec
from tidpo.importance.weights import (
    ESTIMATORS,
    NORMS,
    SPANS,
    hybrid_token_weights,
    needs_attribution,
    needs_weight_columns,
    token_weights,
)

__all__ = [
    "ATTRIBUTION_TARGETS",
    "ESTIMATORS",
    "NORMS",
    "SPANS",
    "TARGETS",
    "attribution_target",
    "attribution_target_spec",
    "embedding_attributions",
    "gaussian_prior",
    "hybrid_token_weights",
    "needs_attribution",
    "needs_weight_columns",
    "response_logp_target",
    "separate_attributions",
    "target_attributions",
    "token_weights",
]
