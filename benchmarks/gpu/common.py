"""What the GPU check's parts share: their arguments, the device, model shapes built in code, JSON output."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
for path in (ROOT / "src", ROOT / "benchmarks", ROOT):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from speed_inputs import SHAPES  # noqa: E402  (after the path set-up above)

# Qwen2.5's public configs (weights random), largest last, and "tiny" for the CPU mode: speed.py's table, one copy
QWEN = {
    name: {k: v for k, v in spec.items() if k != "arch"}
    for name, spec in SHAPES.items()
    if name.startswith("qwen2.5-") or name == "tiny"
}


def parser(doc: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=doc)
    p.add_argument("--cpu", action="store_true", help="tiny model on the CPU")
    p.add_argument("--out", type=Path, required=True, help="the run's folder; the part writes <part>.json there")
    return p


def device(cpu: bool):
    import torch

    if cpu:
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise SystemExit("no CUDA device: run with --cpu")
    return torch.device("cuda")


def qwen(shape: str, dtype, dev, seed: int = 0, llama: bool = False):
    """A randomly initialised Qwen2 of ``shape``, built directly on ``dev`` in ``dtype`` (a 7B model in seconds);
    ``llama``: the same dimensions in a Llama (no q/k/v biases), for folders that ``tidpo train`` loads with
    ``AutoTokenizer`` (a Qwen2 folder gets Qwen2's byte-level tokenizer, which the synthetic words are not in)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    spec = QWEN[shape]
    config_cls, model_cls = (LlamaConfig, LlamaForCausalLM) if llama else (Qwen2Config, Qwen2ForCausalLM)
    config = config_cls(
        **spec,
        max_position_embeddings=8192,
        pad_token_id=spec["vocab_size"] - 2,
        eos_token_id=spec["vocab_size"] - 1,
        bos_token_id=None,
    )
    torch.manual_seed(seed)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(dev):
            return model_cls(config)
    finally:
        torch.set_default_dtype(previous)


def peak_mib(dev) -> float:
    """CUDA's max allocated on a GPU; this process's peak resident set size on a CPU."""
    import resource

    import torch

    if dev.type == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def sync(dev) -> None:
    import torch

    if dev.type == "cuda":
        torch.cuda.synchronize()


class Report:
    """A part's JSON (``OUTDIR/<name>.json``), rewritten after every item so that a part cut short by its budget
    still leaves what it measured; ``summary`` holds the Markdown lines of summary.md."""

    def __init__(self, out: Path, name: str, **fields):
        self.path = out / f"{name}.json"
        self.data = {"part": name, "started": time.strftime("%Y-%m-%d %H:%M:%S"), **fields, "summary": []}
        self.write()

    def __setitem__(self, key, value):
        self.data[key] = value
        self.write()

    def line(self, text: str) -> None:
        print(text, flush=True)
        self.data["summary"].append(text)
        self.write()

    def write(self) -> None:
        self.path.write_text(json.dumps(self.data, indent=2, default=str) + "\n")
