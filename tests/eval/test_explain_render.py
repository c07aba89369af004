"""The HTML page, PNG and JSON written by ``tidpo.eval.render``."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser

import pytest

from tidpo.eval.explain import Explanation, PairExplanation, ResponseExplanation, explain_pairs
from tidpo.eval.render import render_html, render_png, shade_hex, write_explanation

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def side(tokens: list[str], weights: list[float]) -> ResponseExplanation:
    n = len(tokens)
    return ResponseExplanation(
        tokens=tokens,
        token_ids=list(range(n)),
        weights=weights,
        gradient_share=[w / n for w in weights],
        prior=[1 / n] * n,
        attributions=[1.0] * n,
        logps=[-1.0] * n,
        span_length=n,
    )


def handmade(prompt: str = "Q: <i>&amp;") -> Explanation:
    pair = PairExplanation(0, prompt, side(["<b>&", " ok", "</div>"], [2.0, 0.5, 0.5]), side([' "x"'], [1.0]))
    return Explanation([pair], mix=0.7, sigma_div=4.0, span="response", max_length=64, model="<m>", dataset="d&d")


class TokenSpans(HTMLParser):
    """The text of every ``<span class="tok">``, and every external reference."""

    def __init__(self):
        super().__init__()
        self.tokens, self.depth, self.external = [], 0, []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.external += [v for k, v in attrs.items() if k in ("src", "href") and v and "//" in v]
        if tag == "span" and attrs.get("class") == "tok":
            self.tokens.append("")
            self.depth = 1
        elif tag == "span" and self.depth:
            self.depth += 1

    def handle_endtag(self, tag):
        if tag == "span" and self.depth:
            self.depth -= 1

    def handle_data(self, data):
        if self.depth:
            self.tokens[-1] += data


def parse(page: str) -> TokenSpans:
    parser = TokenSpans()
    parser.feed(page)
    return parser


def test_text_is_escaped_and_each_token_is_one_span():
    page = render_html(handmade())
    assert "<b>&" not in page and "<i>" not in page and '</div>"' not in page
    assert "&lt;b&gt;&amp;" in page and "&lt;i&gt;&amp;amp;" in page and "&lt;m&gt;" in page
    assert parse(page).tokens == ["<b>&", " ok", "</div>", ' "x"']


def test_page_is_self_contained_utf8_without_script():
    page = render_html(handmade())
    assert page.startswith("<!DOCTYPE html>") and '<meta charset="utf-8">' in page
    assert "<script" not in page.lower() and "@import" not in page and "url(" not in page
    assert not re.search(r"(src|href)\s*=\s*[\"']?https?://", page) and not parse(page).external


def test_long_prompts_show_their_tail_and_the_rest_on_demand():
    prompt = "start " + "x" * 1000 + " the end"
    page = render_html(handmade(prompt))
    assert "<details" in page and "…" + ("x" * 292) + " the end" in page
    assert page.count("start ") == 1  # only in the collapsed full prompt


def test_shading_is_white_at_one_orange_above_blue_grey_below():
    assert shade_hex(1.0) == "#ffffff"
    assert shade_hex(4.0) == shade_hex(40.0) != shade_hex(2.0)
    red, _, blue = (int(shade_hex(3.0)[i : i + 2], 16) for i in (1, 3, 5))
    assert red > blue
    red, _, blue = (int(shade_hex(0.3)[i : i + 2], 16) for i in (1, 3, 5))
    assert blue > red


@pytest.fixture(scope="module")
def written(tiny, pairs, tmp_path_factory):
    model, tokenizer = tiny
    explanation = explain_pairs(model, tokenizer, pairs, n=3, max_length=64)
    return explanation, write_explanation(explanation, tmp_path_factory.mktemp("explain") / "out")


def test_page_has_the_pairs_and_one_span_per_response_token(written):
    explanation, paths = written
    page = paths["html"].read_text(encoding="utf-8")
    assert page.count('<section class="pair">') == 3
    tokens = [t for p in explanation.pairs for s in (p.chosen, p.rejected) for t in s.tokens]
    assert parse(page).tokens == tokens


def test_png_is_a_png_and_json_round_trips(written):
    explanation, paths = written
    assert paths["png"].read_bytes().startswith(PNG_SIGNATURE)
    assert Explanation.load_json(paths["json"]) == explanation
    assert json.loads(paths["json"].read_text(encoding="utf-8"))["pairs"][0]["chosen"]["weights"]


def test_png_draws_long_responses_odd_characters_and_dollars(tmp_path):
    """Mathtext is off (``$x$`` stays text), missing glyphs become □, and long responses are cut with a note."""
    tokens = [" $x$", " 漢字", "\n", "\t", " " + "a" * 60] * 60
    explanation = handmade()
    explanation.pairs[0].chosen = side(tokens, [1.0] * len(tokens))
    path = render_png(explanation, tmp_path / "long.png")
    assert path.read_bytes().startswith(PNG_SIGNATURE)
