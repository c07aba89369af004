"""Drawing an :class:`~tidpo.eval.explanation.Explanation`: one self-contained HTML page (here) and a PNG overview
(:mod:`tidpo.eval.png`, re-exported), both shaded on the colour scale of :mod:`tidpo.eval.shading`.

The HTML page needs no script and no external file: per-pair tabs are radio buttons and CSS, and each token's
three shades are CSS variables on its one ``<span>``.
"""

from __future__ import annotations

import html
import re
from pathlib import Path

from tidpo.eval.explanation import Explanation, PairExplanation, ResponseExplanation
from tidpo.eval.png import (
    PNG_CHAR_IN,
    PNG_FONT,
    PNG_FONT_SIZE,
    PNG_GAP_CHARS,
    PNG_LINE_IN,
    PNG_MAX_LINES,
    PNG_PANEL_CHARS,
    PNG_TOKEN_CHARS,
    Box,
    render_png,
)
from tidpo.eval.shading import BLUE_GREY, ORANGE, SCALE_OCTAVES, last_token_name, shade_fraction, shade_hex, shade_rgb
from tidpo.files import write_text

__all__ = [
    "BLUE_GREY",
    "CSS",
    "LEGEND_VALUES",
    "ORANGE",
    "PNG_CHAR_IN",
    "PNG_FONT",
    "PNG_FONT_SIZE",
    "PNG_GAP_CHARS",
    "PNG_LINE_IN",
    "PNG_MAX_LINES",
    "PNG_PANEL_CHARS",
    "PNG_TOKEN_CHARS",
    "PROMPT_TAIL_CHARS",
    "SCALE_OCTAVES",
    "VIEWS",
    "Box",
    "render_html",
    "render_png",
    "shade_fraction",
    "shade_hex",
    "shade_rgb",
    "write_explanation",
]

LEGEND_VALUES = (0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0)
PROMPT_TAIL_CHARS = 300
VIEWS = (("w", "weight w"), ("g", "scores I/ΣI"), ("p", "prior P"))


def _component_values(side: ResponseExplanation) -> dict[str, list[float]]:
    """The three shaded quantities per token; the two shares are scaled by ``T`` so that 1 is an even share."""
    scale = side.span_length
    return {
        "w": side.weights,
        "g": [g * scale for g in side.gradient_share],
        "p": [p * scale for p in side.prior],
    }


# ---- HTML ---------------------------------------------------------------------------------------------------
CSS = """
body{font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;color:#1d1d1f;
 margin:0 auto;max-width:1400px;padding:16px 24px;background:#fff}
h1{font-size:22px;margin:4px 0 8px} h2{font-size:17px;margin:0 0 6px} h3{font-size:15px;margin:0}
.help{color:#333;max-width:1000px;margin:4px 0} .settings{color:#555;font-size:13px}
.legend{display:flex;flex-wrap:wrap;gap:2px;align-items:center;margin:10px 0 18px;font-size:13px}
.legend .sw{display:inline-block;min-width:44px;text-align:center;padding:2px 4px;border:1px solid #ccc}
.legend .cap{margin-right:8px;color:#444}
.pair{border-top:2px solid #ddd;padding:14px 0 18px}
.prompt{color:#6b6b6b;font-size:13px;white-space:pre-wrap;overflow-wrap:anywhere;border-left:3px solid #ddd;
 padding:2px 10px;margin:4px 0 10px;max-height:14em;overflow:auto}
details.prompt summary{cursor:pointer;color:#888} details[open]+.tail{display:none}
.tabs input{position:absolute;opacity:0;pointer-events:none}
.tabs label{display:inline-block;font-size:13px;padding:2px 12px;margin-right:4px;border:1px solid #ccc;
 border-radius:4px;cursor:pointer;color:#444;background:#f6f6f6}
.tabs input:checked+label{background:#333;color:#fff;border-color:#333}
.cols{display:grid;grid-template-columns:minmax(0,1fr) minmax(0,1fr);gap:20px;margin-top:10px}
.side{min-width:0;border:1px solid #e4e4e4;border-radius:6px;padding:8px 12px}
.sum{font-size:12.5px;color:#555;margin:2px 0 8px} .sum .item{white-space:nowrap}
.text{white-space:pre-wrap;overflow-wrap:anywhere;line-height:1.9;tab-size:4}
.tok{background:var(--w);border-radius:2px;box-shadow:inset -1px 0 0 rgba(0,0,0,.10);padding:1px 0}
.tok:hover{outline:1px solid #222}
.vg:checked~.cols .tok{background:var(--g)} .vp:checked~.cols .tok{background:var(--p)}
.nl{color:#555}
"""


def _e(text: str) -> str:
    return html.escape(text, quote=True)


def _token_html(text: str) -> str:
    if text == "":  # the first bytes of a character that the next token completes
        return '<span class="nl">·</span>'
    return _e(text).replace("\n", '<span class="nl">↵</span>\n')


def _token_title(text: str, side: ResponseExplanation, i: int) -> str:
    scale = side.span_length
    lines = [
        f"token {text!r}",
        f"weight w = {side.weights[i]:.3f}",
        f"score share I/ΣI = {side.gradient_share[i]:.4f} (×T = {side.gradient_share[i] * scale:.2f})",
        f"prior P = {side.prior[i]:.4f} (×T = {side.prior[i] * scale:.2f})",
        f"score I = {side.attributions[i]:.4g}",
        f"log p = {side.logps[i]:.3f}",
    ]
    return _e("\n".join(lines)).replace("\n", "&#10;")


def _side_html(label: str, side: ResponseExplanation) -> str:
    values = _component_values(side)
    spans = []
    for i, text in enumerate(side.tokens):
        style = ";".join(f"--{key}:{shade_hex(values[key][i])}" for key in ("w", "g", "p"))
        # the nl marker is a nested span only for newline tokens; count tokens by class="tok"
        spans.append(
            f'<span class="tok" style="{style}" title="{_token_title(text, side, i)}">{_token_html(text)}</span>'
        )
    total_logp = sum(side.logps)
    items = [
        f"{side.num_tokens} tokens",
        f"max w {side.max_weight:.2f}",
        f"{last_token_name(side)} w {side.weights[-1]:.2f}",
        f"effective tokens (Σw)²/Σw² {side.effective_tokens:.1f} of {side.num_tokens}",
        f"log p {total_logp:.1f} (mean {total_logp / max(side.num_tokens, 1):.2f})",
    ]
    if side.tokens_cut:
        items.append(f"{side.tokens_cut} more tokens cut by max_length")
    summary = " · ".join(f'<span class="item">{_e(item)}</span>' for item in items)
    # spans are joined without whitespace: the text between them would otherwise show up in the response
    return (
        f'<div class="side"><h3>{_e(label)}</h3><div class="sum">{summary}</div>'
        f'<div class="text">{"".join(spans)}</div></div>'
    )


def _prompt_display(prompt: str) -> str:
    """The prompt for reading: outer whitespace and runs of blank lines dropped (the prompt is context only)."""
    return re.sub(r"\n\s*\n", "\n", prompt.strip())


def _prompt_html(prompt: str) -> str:
    prompt = _prompt_display(prompt)
    if len(prompt) <= PROMPT_TAIL_CHARS:
        return f'<div class="prompt">{_e(prompt)}</div>'
    tail = "…" + prompt[-PROMPT_TAIL_CHARS:]
    return (
        f'<details class="prompt"><summary>prompt: showing its last {PROMPT_TAIL_CHARS} of {len(prompt)} '
        f'characters; click for all</summary>{_e(prompt)}</details><div class="prompt tail">{_e(tail)}</div>'
    )


def _pair_html(k: int, pair: PairExplanation) -> str:
    tabs = "".join(
        f'<input type="radio" name="view{k}" id="v{k}{key}" class="v{key}"{" checked" if key == "w" else ""}>'
        f'<label for="v{k}{key}">{_e(label)}</label>'
        for key, label in VIEWS
    )
    return (
        f'<section class="pair"><h2>Pair {k + 1} <small style="color:#888;font-weight:normal">(dataset row '
        f"{pair.row + 1})</small></h2>{_prompt_html(pair.prompt)}"
        f'<div class="tabs">{tabs}<div class="cols">'
        f"{_side_html('chosen', pair.chosen)}{_side_html('rejected', pair.rejected)}</div></div></section>"
    )


def _legend_html() -> str:
    swatches = []
    for value in LEGEND_VALUES:
        text = "≤ 0.25" if value == LEGEND_VALUES[0] else "≥ 4" if value == LEGEND_VALUES[-1] else f"{value:g}"
        swatches.append(f'<span class="sw" style="background:{shade_hex(value)}">{text}</span>')
    return f'<div class="legend"><span class="cap">colour scale (log):</span>{"".join(swatches)}</div>'


def _scores_text(e: Explanation) -> str:
    if e.attributed:
        return "Eqs. 5–6: how strongly the token's input embedding moves the attribution target"
    return f"importance={e.importance}: {e.scores_help or 'its own scores'}"


def render_html(explanation: Explanation) -> str:
    """The whole page as a string (UTF-8, inline CSS, no script, no external asset; all text escaped)."""
    e = explanation
    settings = (
        f"model {e.model or '?'} · dataset {e.dataset or '?'} · importance = {e.importance} · "
        f"λ (importance_mix) = {e.mix:g} · "
        f"σ = T / {e.sigma_div:g} · weight_span = {e.span} · max_length = {e.max_length} · {len(e.pairs)} pairs"
    )
    help_text = (
        "Each response token is shaded by its TI-DPO weight w: the factor on its log-probability ratio in the "
        "token-weighted DPO reward (Eq. 8, w ∝ λ·I/ΣI + (1 − λ)·P, rescaled to mean 1 over the response). "
        "Orange: w > 1, the token counts more than an average token of its response; blue-grey: w < 1, it counts "
        "less; white: w ≈ 1. Hover a token for its numbers. The tabs of each pair switch the shading to the "
        f"score component I/ΣI ({_scores_text(e)}) or to the Gaussian position prior P (Eq. 7), both times T, so "
        "that 1 is an even share."
    )
    body = "".join(_pair_html(k, pair) for k, pair in enumerate(e.pairs))
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>TI-DPO token weights</title><style>{CSS}</style></head><body>"
        f'<h1>TI-DPO token weights</h1><p class="help">{_e(help_text)}</p>'
        f'<div class="settings">{_e(settings)}</div>{_legend_html()}{body}</body></html>\n'
    )


# ---- all outputs --------------------------------------------------------------------------------------------
def write_explanation(explanation: Explanation, output_dir: str | Path, png_pairs: int = 4) -> dict[str, Path]:
    """Write ``explain.html``, ``explain.png`` and ``explain.json`` into ``output_dir`` (created if needed)."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    html_path = output_dir / "explain.html"
    write_text(html_path, render_html(explanation))
    return {
        "html": html_path,
        "png": render_png(explanation, output_dir / "explain.png", max_pairs=png_pairs),
        "json": explanation.save_json(output_dir / "explain.json"),
    }
