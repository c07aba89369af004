"""``sigmoid_norm``: DPO's sigmoid on the per-token scores, ``−log σ(β (s_w/T_w − s_l/T_l))``."""

import torch.nn.functional as F

from tidpo.losses.loss_type import LossType


def sigmoid_norm(t, s):
    chosen_tokens, rejected_tokens = t.tokens
    return -F.logsigmoid(s.beta * (t.chosen_score / chosen_tokens - t.rejected_score / rejected_tokens))


LOSS = LossType("sigmoid_norm", sigmoid_norm, "scores", "length-normalised DPO", f_divergence=True)
