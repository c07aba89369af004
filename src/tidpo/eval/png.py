"""The PNG overview of an :class:`~tidpo.eval.explanation.Explanation`: token boxes shaded by weight (the scale of
:mod:`tidpo.eval.shading`), chosen response left and rejected right, for the first few pairs.
"""

from __future__ import annotations

from pathlib import Path

from tidpo.eval.explanation import Explanation, PairExplanation, ResponseExplanation
from tidpo.eval.shading import SCALE_OCTAVES, last_token_name, shade_hex, shade_rgb
from tidpo.files import replacing

PNG_FONT = "DejaVu Sans Mono"
PNG_FONT_SIZE = 9.0
PNG_CHAR_IN = 0.6021 * PNG_FONT_SIZE / 72  # advance width of one monospace character, inches
PNG_LINE_IN = 1.9 * PNG_FONT_SIZE / 72
PNG_PANEL_CHARS = 78  # characters per line in each of the two columns
PNG_GAP_CHARS = 5
PNG_MAX_LINES = 14  # token lines per response; the rest is summarised
PNG_TOKEN_CHARS = 22  # longer tokens are shortened


def _font_charset() -> set[int]:
    from matplotlib import font_manager
    from matplotlib.ft2font import FT2Font

    path = font_manager.findfont(font_manager.FontProperties(family=PNG_FONT), fallback_to_default=True)
    return set(FT2Font(path).get_charmap())


def _in_font(text: str, charset: set[int]) -> str:
    return "".join(ch if ord(ch) in charset else "□" for ch in text)


def _png_label(text: str, charset: set[int]) -> str:
    text = _in_font(text.replace("\n", "↵").replace("\t", "→").replace("\r", ""), charset) or "·"
    return text if len(text) <= PNG_TOKEN_CHARS else text[: PNG_TOKEN_CHARS - 1] + "…"


Box = tuple[int, float, str, float]  # (line, x in characters, label, weight)


def _layout(side: ResponseExplanation, charset: set[int]) -> tuple[list[Box], int]:
    """Token boxes wrapped at ``PNG_PANEL_CHARS`` (a token with a newline ends its line), and the lines used."""
    boxes, line, x = [], 0, 0.0
    for text, weight in zip(side.tokens, side.weights, strict=True):
        label = _png_label(text, charset)
        if x > 0 and x + len(label) > PNG_PANEL_CHARS:
            line, x = line + 1, 0.0
        if line >= PNG_MAX_LINES:
            break
        boxes.append((line, x, label, weight))
        x += len(label) + 0.35
        if "\n" in text:
            line, x = line + 1, 0.0
    lines = min(line + (x > 0), PNG_MAX_LINES)
    return boxes, lines + (len(boxes) < side.num_tokens)  # one more line for the "not shown" note


_WIDTH_CHARS = 2 * PNG_PANEL_CHARS + PNG_GAP_CHARS
_MARGIN_IN, _TOP_IN, _BOTTOM_IN = 0.3, 0.55, 0.85


def render_png(explanation: Explanation, path: str | Path, max_pairs: int = 4, dpi: int = 130) -> Path:
    """Token boxes shaded by weight for the first ``max_pairs`` pairs, chosen left and rejected right.

    One axis unit is one character of the monospace font and one text line, so boxes fit their labels exactly.
    """
    from matplotlib.figure import Figure  # no pyplot: no global backend or figure state

    charset = _font_charset()
    pairs = explanation.pairs[:max_pairs]
    layouts = [[_layout(side, charset) for side in (p.chosen, p.rejected)] for p in pairs]
    heights = [3 + max(lines for _, lines in sides) for sides in layouts]  # prompt + summary + blank line
    fig_w = _WIDTH_CHARS * PNG_CHAR_IN + 2 * _MARGIN_IN
    fig_h = _TOP_IN + sum(heights) * PNG_LINE_IN + _BOTTOM_IN
    fig = Figure(figsize=(fig_w, fig_h), dpi=dpi, facecolor="white")
    _draw_title(fig, (fig_w, fig_h), explanation)
    y_in = fig_h - _TOP_IN
    for k, (pair, sides, height) in enumerate(zip(pairs, layouts, heights, strict=True)):
        y_in -= height * PNG_LINE_IN
        rect = (_MARGIN_IN / fig_w, y_in / fig_h, _WIDTH_CHARS * PNG_CHAR_IN / fig_w, height * PNG_LINE_IN / fig_h)
        _draw_pair(fig.add_axes(rect), k, pair, sides, height, charset)
    _draw_colorbar(fig)
    path = Path(path)
    with replacing(path) as tmp:
        fig.savefig(tmp, dpi=dpi)
    return path


def _draw_title(fig, size: tuple[float, float], explanation: Explanation) -> None:
    fig_w, fig_h = size
    title = (
        f"TI-DPO token weights w (mean 1 per response)   λ = {explanation.mix:g}, σ = T/{explanation.sigma_div:g}, "
        f"span = {explanation.span}   {explanation.model}"
    )
    fig.text(_MARGIN_IN / fig_w, 1 - 0.3 / fig_h, title, fontsize=11, fontweight="bold", va="center", parse_math=False)


def _draw_pair(ax, k: int, pair: PairExplanation, sides, height: int, charset: set[int]) -> None:
    """Pair ``k`` in its own axes ``height`` lines tall: the prompt's end on one line, then both responses."""
    ax.set_xlim(0, _WIDTH_CHARS)
    ax.set_ylim(height, 0)
    ax.axis("off")
    prompt = _in_font(" ".join(pair.prompt.split())[-(_WIDTH_CHARS - 30) :], charset)  # its end, on one line
    ax.text(0, 0.5, f"pair {k + 1} (row {pair.row + 1})  prompt …{prompt}", color="#666", **_TEXT)
    for column, (name, side, (boxes, _)) in enumerate(
        zip(("chosen", "rejected"), (pair.chosen, pair.rejected), sides, strict=True)
    ):
        _draw_side(ax, column * (PNG_PANEL_CHARS + PNG_GAP_CHARS), name, side, boxes)


_TEXT = {"family": PNG_FONT, "fontsize": PNG_FONT_SIZE, "va": "center", "ha": "left", "parse_math": False}


def _draw_side(ax, x0: float, name: str, side: ResponseExplanation, boxes: list[Box]) -> None:
    from matplotlib.patches import Rectangle

    summary = (
        f"{name}: {side.num_tokens} tokens, max w {side.max_weight:.2f}, "
        f"effective {side.effective_tokens:.1f}, {last_token_name(side)} w {side.weights[-1]:.2f}"
    )
    ax.text(x0, 1.5, summary, fontweight="bold", **_TEXT)
    if len(boxes) < side.num_tokens:
        note = f"… {side.num_tokens - len(boxes)} more tokens: see explain.html"
        ax.text(x0, 2.5 + boxes[-1][0] + 1, note, color="#666", **_TEXT)
    for line, x, label, weight in boxes:
        y = 2.5 + line
        box = Rectangle((x0 + x - 0.1, y - 0.42), len(label) + 0.2, 0.84, facecolor=shade_hex(weight))
        box.set(edgecolor="#b5b5b5", linewidth=0.4)
        ax.add_patch(box)
        ax.text(x0 + x, y, label, color="#111", **_TEXT)


def _draw_colorbar(fig) -> None:
    import numpy as np
    from matplotlib.colors import ListedColormap

    steps = np.linspace(-SCALE_OCTAVES, SCALE_OCTAVES, 256)  # log2 w
    cmap = ListedColormap([tuple(c / 255 for c in shade_rgb(2.0**s)) for s in steps])
    fig_h = fig.get_figheight()
    ax = fig.add_axes((0.3, 0.35 / fig_h, 0.4, 0.16 / fig_h))
    ax.imshow(steps[None, :], aspect="auto", cmap=cmap, extent=(-SCALE_OCTAVES, SCALE_OCTAVES, 0, 1))
    ax.set_xticks([-2, -1, 0, 1, 2], ["≤ 0.25", "0.5", "1", "2", "≥ 4"], fontsize=8)
    ax.set_yticks([])
    ax.set_title("w: orange = more important than average, blue-grey = less", fontsize=8.5, pad=3)
