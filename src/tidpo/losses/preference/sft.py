"""``sft``: the negative log-likelihood of the chosen responses, ``−Σ w log π_θ / Σ 1`` over every chosen response
token of the micro-batch (token weights on the tokens, the plain token count below; no reference), the same value
for every pair."""

from tidpo.losses.loss_type import LossType


def sft(t, s):
    logps, weights, mask = (x.chunk(2)[0] for x in (t.policy_logps, t.weights, t.completion_mask))
    nll = -(logps * weights).sum() / mask.sum()
    return nll.expand(logps.shape[0])


LOSS = LossType("sft", sft, "policy", "NLL of the chosen responses", f_divergence=True)
