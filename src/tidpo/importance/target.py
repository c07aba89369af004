"""What an attribution target is (Eq. 5 and the variants beyond the paper): the scalar whose gradient with respect
to the input embeddings gives each token's attribution (Eq. 6). A new target is one file in
:mod:`tidpo.importance.targets`; the layouts compute it through :class:`TargetInputs`, and the route resolver asks
``shares_prompt`` whether it can run on the shared-prompt layout or needs whole rows."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import Tensor


def _unavailable() -> Tensor:
    raise ValueError("this attribution target needs per-token log-probs, which this layout does not give it")


@dataclass(frozen=True)
class TargetInputs:
    """What a layout offers a target, each computed only when the target asks (with its graph).

    Attributes:
        attention_mask: ``(B, L)`` real tokens. completion_mask: ``(B, L)`` response tokens.
        last_logits: ``mask -> (B, V)`` logits at each row's last token of ``mask`` (with ``attention_mask``: the
            response's EOS).
        token_logps: ``() -> (B, L)`` log-probs of each token given the ones before (0 off the response).
    """

    attention_mask: Tensor
    completion_mask: Tensor
    last_logits: Callable[[Tensor], Tensor]
    token_logps: Callable[[], Tensor] = _unavailable


@dataclass(frozen=True)
class AttributionTarget:
    """One row of the target table: ``scalar(inputs) -> 0-d`` (summed over rows, which are independent, so one
    backward gives every row's attribution); ``shares_prompt``: whether the shared-prompt layout computes it."""

    name: str
    scalar: Callable[[TargetInputs], Tensor]
    help: str
    shares_prompt: bool = False
    rank: int = 100
