"""The colour scale of both drawings of an :class:`~tidpo.eval.explanation.Explanation` (HTML page and PNG).

A token's value ``v`` (its weight ``w``, or a component's share × ``T``, where 1 is an even share) is shaded on
``log2 v``: white at 1, orange up to ``v ≥ 4``, blue-grey down to ``v ≤ 1/4``. Also the name both give a
response's last token.
"""

from __future__ import annotations

import math

from tidpo.eval.explanation import ResponseExplanation

ORANGE = (255, 150, 40)  # v >= 4
BLUE_GREY = (118, 142, 175)  # v <= 1/4
SCALE_OCTAVES = 2.0  # log2 v at which the shade saturates


def shade_fraction(value: float) -> float:
    """``log2 value / 2`` clipped to [-1, 1]: -1 blue-grey, 0 white, 1 orange."""
    if not math.isfinite(value):
        return 1.0
    return max(-1.0, min(1.0, math.log2(max(value, 1e-9)) / SCALE_OCTAVES))


def shade_rgb(value: float) -> tuple[int, int, int]:
    t = shade_fraction(value)
    end = ORANGE if t >= 0 else BLUE_GREY
    return tuple(round(255 + abs(t) * (c - 255)) for c in end)


def shade_hex(value: float) -> str:
    return "#{:02x}{:02x}{:02x}".format(*shade_rgb(value))


def last_token_name(side: ResponseExplanation) -> str:
    """How summaries name the last token: the response's EOS unless ``max_length`` cut the response."""
    return "last token" if side.tokens_cut else "final EOS"
