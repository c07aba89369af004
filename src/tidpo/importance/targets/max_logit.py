"""``max_logit`` (Eq. 5, the paper): the largest logit at each row's last real token, the response's EOS."""

from tidpo.importance.attribution import attribution_target
from tidpo.importance.target import AttributionTarget, TargetInputs


def scalar(x: TargetInputs):
    return attribution_target(x.last_logits(x.attention_mask), x.attention_mask)


TARGET = AttributionTarget(
    "max_logit", scalar, "Eq. 5, the largest logit at the response's EOS; the paper", shares_prompt=True, rank=0
)
