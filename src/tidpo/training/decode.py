"""The anchor decode route: how the anchors' tokens are drawn, one forward per token.

- ``dynamic``: a ``DynamicCache`` that grows by one key/value per token (``generate`` on whole rows; the loop of
  :func:`sample_from_prompt` on shared prompts). Each token's forward has new shapes.
- ``static``: the prompt's keys and values copied once into buffers of the final length (transformers'
  ``StaticCache``), with a 4-D mask buffer that opens one slot per token: every token runs the same shapes from the
  same memory, and nothing in the forward reads back to the host.
- ``graph``: ``static``, with the one-token forward captured once per draw in a CUDA graph and replayed per token,
  so a token costs one launch instead of one per kernel (a per-token loop on a GPU is launch-bound).

All three draw the same tokens under a seed: the same warpers in ``generate``'s order and one ``multinomial``
per token (:func:`draw`); the masked slots of the static buffers take no weight in the attention.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from transformers import GenerationConfig, LogitsProcessorList
from transformers.generation import TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

DECODES = ("dynamic", "static", "graph")


def warpers(config: GenerationConfig, check=None) -> LogitsProcessorList:
    """``generate``'s processors for one sequence per prompt: ``check`` first (a
    :class:`tidpo.training.anchors.FiniteLogitsCheck`), then temperature, top-k and top-p when sampling."""
    out = LogitsProcessorList([check] if check is not None else [])
    if not config.do_sample:
        return out
    if config.temperature is not None and config.temperature != 1.0:
        out.append(TemperatureLogitsWarper(config.temperature))
    if config.top_k is not None and config.top_k != 0:
        out.append(TopKLogitsWarper(top_k=config.top_k, min_tokens_to_keep=1))
    if config.top_p is not None and config.top_p < 1.0:
        out.append(TopPLogitsWarper(top_p=config.top_p, min_tokens_to_keep=1))
    return out


def draw(processors: LogitsProcessorList, tokens: list[Tensor], logits: Tensor, config, done: Tensor) -> Tensor:
    """The next token ``(B,)`` from ``logits`` ``(B, V)`` (float32): sampled or greedy; rows already done get
    the pad token."""
    sequences = (
        torch.stack(tokens, 1) if tokens else torch.zeros(logits.shape[0], 0, dtype=torch.long, device=logits.device)
    )
    scores = processors(sequences, logits)
    if config.do_sample:
        token = torch.multinomial(torch.softmax(scores, dim=-1), num_samples=1).squeeze(1)
    else:
        token = scores.argmax(-1)
    return token.masked_fill(done, config.pad_token_id)


@torch.no_grad()
def sample_from_prompt(
    model: nn.Module, prompt, config: GenerationConfig, check=None, decode: str = "dynamic"
) -> Tensor:
    """Sample ``(B, N)`` tokens continuing prompts already run (their keys, values and last hidden state in
    ``prompt``, a :class:`tidpo.training.prompt_cache.PromptState`): a KV-cached decode loop, one forward per new
    token, with ``generate``'s warpers in its order, so a seed gives ``generate``'s draws. Rows that have emitted
    EOS continue with the pad token; the loop stops when every row has, or after ``max_new_tokens``.
    ``do_sample=False`` is greedy. ``check`` (a :class:`tidpo.training.anchors.FiniteLogitsCheck`) sees each step's
    logits first, as ``generate``'s own processors come before its warpers. ``decode`` is the route: ``dynamic``
    grows a ``DynamicCache``; ``static`` and ``graph`` draw the same tokens from fixed buffers."""
    from tidpo.training.prompt_cache import cache_keyword

    if decode != "dynamic":
        return static_sample(model, prompt, config, check, cache_keyword(model), graph=decode == "graph")
    return _dynamic_sample(model, prompt.detached(), config, check, cache_keyword(model))


def _dynamic_sample(model: nn.Module, prompt, config: GenerationConfig, check, keyword: str) -> Tensor:
    """The ``dynamic`` route of :func:`sample_from_prompt`: one forward per token on a growing ``DynamicCache``."""
    head = model.get_output_embeddings()
    # (B, V): the distribution of the first anchor token; the hidden state may be kept in fp32 for a bf16 head
    logits = head(prompt.last.to(head.weight.dtype)).float()
    cache = prompt.dynamic_cache()
    processors = warpers(config, check)
    mask, rows, start = prompt.mask, prompt.mask.shape[0], prompt.positions(1)
    done = torch.zeros(rows, dtype=torch.bool, device=mask.device)
    tokens = []
    for step in range(config.max_new_tokens):
        token = draw(processors, tokens, logits, config, done)
        tokens.append(token)
        done |= token == config.eos_token_id
        if done.all() or step + 1 == config.max_new_tokens:
            break
        mask = torch.cat([mask, mask.new_ones(rows, 1)], dim=1)
        step_inputs = {"input_ids": token.unsqueeze(1), "attention_mask": mask, "position_ids": start + step}
        logits = model(**step_inputs, use_cache=True, **{keyword: cache}).logits[:, -1].float()
    return torch.stack(tokens, 1)


class StaticStep:
    """The one-token forward of a static-cache decode: fixed buffers for the token, its positions, the mask and
    the keys/values of ``prompt`` plus ``new`` slots; ``graph=True`` captures the forward once and replays it."""

    def __init__(self, model: nn.Module, prompt, new: int, keyword: str, graph: bool):
        from transformers.cache_utils import StaticCache

        rows, width = prompt.mask.shape
        self.model, self.keyword, self.graph, self.width = model, keyword, graph, width
        self.cache = StaticCache(config=model.config, max_cache_len=width + new)
        for layer, (keys, values) in zip(self.cache.layers, prompt.cache, strict=True):
            layer.update(keys, values)  # allocates the buffers, writes slots [0, P)
        device, dtype = prompt.mask.device, prompt.cache[0][0].dtype
        self.open = torch.zeros(rows, width + new, dtype=torch.bool, device=device)
        self.open[:, :width] = prompt.mask.bool()
        sdpa = model.config._attn_implementation == "sdpa"
        self.mask = (
            self.open if sdpa else torch.full(self.open.shape, torch.finfo(dtype).min, dtype=dtype, device=device)
        )
        if not sdpa:
            self.mask.masked_fill_(self.open, 0.0)
        self.token = torch.zeros(rows, 1, dtype=torch.long, device=device)
        self.start = prompt.positions(1)
        self.position = self.start.clone()
        self.logits, self._graph = None, None

    def _forward(self) -> Tensor:
        out = self.model(
            input_ids=self.token,
            attention_mask=self.mask[:, None, None, :],
            position_ids=self.position,
            use_cache=True,
            **{self.keyword: self.cache},
        )
        return out.logits

    def _capture(self) -> None:
        lengths = [layer.cumulative_length.clone() for layer in self.cache.layers]
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            self._forward()  # warm-up outside the graph (it writes the next slot, which the first replay rewrites)
        torch.cuda.current_stream().wait_stream(stream)
        for layer, length in zip(self.cache.layers, lengths, strict=True):
            layer.cumulative_length.copy_(length)
        self._graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self._graph):
            self.logits = self._forward()

    def __call__(self, token: Tensor, step: int) -> Tensor:
        """Logits ``(B, V)`` (float32) after ``token`` ``(B,)``, the ``step``-th new token (slot ``P + step``)."""
        self.token.copy_(token.unsqueeze(1))
        self.position.copy_(self.start + step)
        self.open[:, self.width + step] = True
        if self.mask is not self.open:
            self.mask[:, self.width + step] = 0.0
        if not self.graph:
            return self._forward()[:, -1].float()
        if self._graph is None:
            self._capture()
        self._graph.replay()
        return self.logits[:, -1].float()


@torch.no_grad()
def static_sample(model: nn.Module, prompt, config: GenerationConfig, check, keyword: str, graph: bool) -> Tensor:
    """:func:`sample_from_prompt` on a static cache (``graph``: replayed as a CUDA
    graph): ``(B, N)`` tokens, the same draws under a seed."""
    prompt = prompt.detached()
    head = model.get_output_embeddings()
    logits = head(prompt.last.to(head.weight.dtype)).float()
    processors = warpers(config, check)
    done = torch.zeros(prompt.mask.shape[0], dtype=torch.bool, device=prompt.mask.device)
    step_fn, tokens = StaticStep(model, prompt, config.max_new_tokens, keyword, graph), []
    for step in range(config.max_new_tokens):
        token = draw(processors, tokens, logits, config, done)
        tokens.append(token)
        done |= token == config.eos_token_id
        if done.all() or step + 1 == config.max_new_tokens:
            break
        logits = step_fn(token, step)
    return torch.stack(tokens, 1)


@torch.no_grad()
def static_decode_problem(model: nn.Module) -> str | None:
    """Why ``model`` cannot decode on a static cache (None when it can): its attention must take a 4-D mask, its
    cache layers must all be plain static ones, and one static step must give the dynamic step's logits."""
    from transformers.cache_utils import StaticCache, StaticLayer

    from tidpo.training.prompt_cache import cache_keyword, prompt_forward, sharing_problem

    attention = model.config._attn_implementation
    if attention not in ("sdpa", "eager"):
        return f"attn_implementation={attention!r}: the static decode passes a 4-D mask (sdpa and eager take one)"
    layers = StaticCache(config=model.config, max_cache_len=4).layers
    if any(type(layer) is not StaticLayer for layer in layers):
        return "its static cache has sliding-window layers"
    problem = sharing_problem(model)
    if problem is not None:
        return problem
    return _one_step_problem(model, prompt_forward, cache_keyword(model))


def _one_step_problem(model: nn.Module, prompt_forward, keyword: str) -> str | None:
    was_training = model.training
    model.eval()
    try:
        device = model.get_input_embeddings().weight.device
        ids = torch.tensor([[0, 1, 2], [0, 3, 4]], device=device)
        mask = torch.tensor([[0, 1, 1], [1, 1, 1]], device=device)
        prompt = prompt_forward(model, ids, mask)
        token = torch.tensor([5, 6], device=device)
        static = StaticStep(model, prompt, 2, keyword, graph=False)(token, 0)
        dynamic = (
            model(
                input_ids=token[:, None],
                attention_mask=torch.cat([mask, mask[:, :1] * 0 + 1], 1),
                position_ids=prompt.positions(1),
                use_cache=True,
                **{keyword: prompt.dynamic_cache()},
            )
            .logits[:, -1]
            .float()
        )
    finally:
        model.train(was_training)
    scale = float(dynamic.abs().max()) + 1.0
    tolerance = 1e-4 if prompt.last.dtype == torch.float32 else 2e-2
    error = float((static - dynamic).abs().max()) / scale
    return None if error <= tolerance else f"a static-cache step differs from the dynamic one by {error:.1e}"


def graph_problem(model: nn.Module) -> str | None:
    """Why the decode cannot be captured as a CUDA graph (None when it can)."""
    device = model.get_input_embeddings().weight.device
    return None if device.type == "cuda" else f"the policy is on {device.type}; CUDA graphs capture CUDA work only"
