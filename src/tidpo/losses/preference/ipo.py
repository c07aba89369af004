"""``ipo``: IPO's squared loss on the per-token scores, ``(s_w/T_w − s_l/T_l − 1/(2β))²`` (β is IPO's τ; each
weighted log-ratio divided by its response's token count, as TRL does)."""

from tidpo.losses.loss_type import LossType


def ipo(t, s):
    chosen_tokens, rejected_tokens = t.tokens
    delta = t.chosen_score / chosen_tokens - t.rejected_score / rejected_tokens
    return (delta - 1 / (2 * s.beta)) ** 2


LOSS = LossType("ipo", ipo, "scores", "IPO, per-token log-ratios", f_divergence=True)
