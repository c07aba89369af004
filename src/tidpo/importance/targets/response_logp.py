"""``response_logp`` (beyond the paper): the log-probability of the response's own tokens, which spreads the target
over every response token instead of the EOS's hidden state."""

from tidpo.importance.attribution import response_logp_target
from tidpo.importance.target import AttributionTarget, TargetInputs


def scalar(x: TargetInputs):
    return response_logp_target(x.token_logps(), x.completion_mask)


TARGET = AttributionTarget(
    "response_logp", scalar, "the log-probability of the response's own tokens; beyond the paper", rank=1
)
