"""Step time, tokens/s and peak memory of TRL 1.16's DPOTrainer and tidpo's modes, side by side in one process.

    python benchmarks/speed.py                 # this machine's default shape; writes JSON + docs/performance.md
    python benchmarks/speed.py --quick         # a tiny model, seconds: checks that every configuration runs
    python benchmarks/speed.py --help

Every configuration trains the same randomly initialised model shape (SmolLM2-135M's config on a CPU, fp32;
Qwen2.5-0.5B's on a GPU, bf16) on the same synthetic pairs (random token ids, every row prompt + response + EOS),
with AdamW, full fine-tuning and an explicit frozen reference copy. A step's time is the median over
``--steps`` optimizer steps after ``--warmup`` steps. Peak memory is CUDA's max allocated on a GPU, and on a CPU
the peak resident set size above the level measured just before the configuration built its models.
"""

from __future__ import annotations

import argparse
import ctypes
import datetime as dt
import gc
import json
import os
import platform
import statistics
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402
from transformers import TrainerCallback  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHAPES = {  # public configs of the two models, weights random
    "smollm2-135m": dict(
        arch="llama", vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
        num_attention_heads=9, num_key_value_heads=3, rope_theta=100000.0, tie_word_embeddings=True,
    ),
    "qwen2.5-0.5b": dict(
        arch="qwen2", vocab_size=151936, hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
        num_attention_heads=14, num_key_value_heads=2, rope_theta=1000000.0, tie_word_embeddings=True,
    ),
    "tiny": dict(
        arch="llama", vocab_size=512, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, rope_theta=10000.0, tie_word_embeddings=True,
    ),
}  # fmt: skip

# name -> (trainer, config overrides). TRL runs with its own defaults except where named.
CONFIGS = {
    "trl_dpo": ("trl", {}),
    "trl_dpo_no_ckpt": ("trl", {"gradient_checkpointing": False}),
    "tidpo_dpo": ("tidpo", {"baseline": "dpo"}),
    "tidpo_ti_dpo_g0_fused": ("tidpo", {"triplet_weight": 0.0, "attribution": "fused"}),
    "tidpo_ti_dpo_g0_separate": ("tidpo", {"triplet_weight": 0.0, "attribution": "separate"}),
    "tidpo_ti_dpo_full": ("tidpo", {"triplet_weight": 0.1, "anchor_max_new_tokens": 64}),
}
SWEEP = ("trl_dpo_no_ckpt", "tidpo_dpo", "tidpo_ti_dpo_full")
RATIOS = (  # (label, numerator, denominator or "trl_best", target, metric)
    ("tidpo DPO mode / TRL DPO", "tidpo_dpo", "trl_best", 0.85, "step_s"),
    ("TI-DPO γ=0 fused / TRL DPO", "tidpo_ti_dpo_g0_fused", "trl_best", 0.9, "step_s"),
    ("full TI-DPO / TRL DPO", "tidpo_ti_dpo_full", "trl_best", 1.6, "step_s"),
    ("TI-DPO fused / TI-DPO separate", "tidpo_ti_dpo_g0_fused", "tidpo_ti_dpo_g0_separate", 0.85, "step_s"),
    ("peak memory, full TI-DPO / TRL DPO", "tidpo_ti_dpo_full", "trl_best", 1.0, "peak_mem_mb"),
)


@dataclass
class Result:
    name: str
    prompt_len: int
    response_len: int
    step_s: float
    step_times: list[float]
    tokens_per_s: float
    peak_mem_mb: float
    extra: dict = field(default_factory=dict)


class _RSSPeak:
    """Samples this process's resident set size every few ms in a thread; ``peak`` in bytes."""

    def __init__(self):
        self.peak, self._stop = 0, threading.Event()
        self._page = os.sysconf("SC_PAGE_SIZE")
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def current() -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self.current())
            time.sleep(0.005)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


class _StepTimer(TrainerCallback):
    def __init__(self, device: torch.device):
        self.device, self.times, self._start = device, [], 0.0

    def _sync(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize()

    def on_step_begin(self, args, state, control, **kwargs):
        self._sync()
        self._start = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        self._sync()
        self.times.append(time.perf_counter() - self._start)


def build_tokenizer(vocab_size: int):
    """A word-level tokenizer over ``w0 … w{V-3}`` plus ``<pad>`` and ``<eos>``: one word, one token."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {f"w{i}": i for i in range(vocab_size - 2)} | {"<pad>": vocab_size - 2, "<eos>": vocab_size - 1}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<pad>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>", unk_token="<pad>")


def build_model(shape: str, dtype: torch.dtype, seed: int):
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    spec = dict(SHAPES[shape])
    config_cls, model_cls = {"llama": (LlamaConfig, LlamaForCausalLM), "qwen2": (Qwen2Config, Qwen2ForCausalLM)}[
        spec.pop("arch")
    ]
    config = config_cls(**spec, max_position_embeddings=8192, pad_token_id=spec["vocab_size"] - 2,
                        eos_token_id=spec["vocab_size"] - 1, bos_token_id=None)  # fmt: skip
    torch.manual_seed(seed)
    return model_cls(config).to(dtype)


def synthetic_pairs(n: int, prompt_len: int, response_len: int, vocab_size: int, seed: int):
    """``n`` standard-format pairs of random words (prompt ``prompt_len``, responses ``response_len`` tokens)."""
    from datasets import Dataset

    g = torch.Generator().manual_seed(seed)

    def words(k):
        return " ".join(f"w{i}" for i in torch.randint(0, vocab_size - 2, (k,), generator=g).tolist())

    rows = [{"prompt": words(prompt_len), "chosen": " " + words(response_len), "rejected": " " + words(response_len)}
            for _ in range(n)]  # fmt: skip
    return Dataset.from_list(rows)


def _free_memory():
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)  # hand freed heap pages back, so RSS baselines are honest
    except OSError:
        pass


def run_config(
    name: str, args, device: torch.device, dtype: torch.dtype, prompt_len: int, response_len: int, timed_steps: int
):
    kind, overrides = CONFIGS[name]
    _free_memory()
    baseline = _RSSPeak.current()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    tokenizer = build_tokenizer(SHAPES[args.shape]["vocab_size"])
    model = build_model(args.shape, dtype, seed=0)
    ref = build_model(args.shape, dtype, seed=0)
    steps = args.warmup + timed_steps
    data = synthetic_pairs(args.pairs * steps, prompt_len, response_len, SHAPES[args.shape]["vocab_size"], seed=1)
    common = dict(
        output_dir=str(args.scratch / name), per_device_train_batch_size=args.pairs, max_steps=steps,
        learning_rate=1e-6, logging_steps=10_000, save_strategy="no", report_to="none", seed=0,
        max_length=prompt_len + response_len + 1, dataloader_num_workers=0, disable_tqdm=True,
        use_cpu=device.type == "cpu", bf16=dtype == torch.bfloat16,
    )  # fmt: skip
    if kind == "trl":
        from trl import DPOConfig, DPOTrainer

        trainer = DPOTrainer(model=model, ref_model=ref, args=DPOConfig(**common, **overrides), train_dataset=data,
                             processing_class=tokenizer)  # fmt: skip
    else:
        from tidpo import TIDPOConfig, TIDPOTrainer

        trainer = TIDPOTrainer(model=model, ref_model=ref, args=TIDPOConfig(**common, **overrides),
                               train_dataset=data, processing_class=tokenizer)  # fmt: skip
    timer = _StepTimer(device)
    trainer.add_callback(timer)
    with _RSSPeak() as rss:
        trainer.train()
    timed = timer.times[args.warmup :]
    step = statistics.median(timed)
    tokens = args.pairs * 2 * (prompt_len + response_len + 1)
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak = (rss.peak - baseline) / 2**20
    extra = {}
    if kind == "tidpo":
        extra = {k: v for k, v in trainer.state.log_history[-1].items() if k.startswith("time/")}
    del trainer, model, ref
    _free_memory()
    return Result(name, prompt_len, response_len, step, timed, tokens / step, peak, extra)


def ratios(results: dict[str, Result]) -> list[dict]:
    trl = [results[n] for n in ("trl_dpo", "trl_dpo_no_ckpt") if n in results]
    best = min(trl, key=lambda r: r.step_s) if trl else None
    rows = []
    for label, num, den, target, metric in RATIOS:
        a, b = results.get(num), best if den == "trl_best" else results.get(den)
        if a is None or b is None:
            continue
        value = getattr(a, metric) / getattr(b, metric)
        rows.append({"ratio": label, "value": value, "target": target, "met": value <= target,
                     "denominator": b.name})  # fmt: skip
    return rows


def machine() -> dict:
    info = {"platform": platform.platform(), "python": platform.python_version(), "torch": torch.__version__,
            "cpu_count": os.cpu_count()}  # fmt: skip
    try:
        cpu = next(ln for ln in Path("/proc/cpuinfo").read_text().splitlines() if ln.startswith("model name"))
        info["cpu"] = cpu.split(":", 1)[1].strip()
    except (OSError, StopIteration):
        info["cpu"] = platform.processor()
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    import transformers
    import trl

    info["transformers"], info["trl"] = transformers.__version__, trl.__version__
    # allocator settings change CPU step times a lot (page faults of fresh large buffers); name them
    info["env"] = {k: v for k, v in sorted(os.environ.items()) if k.startswith(("MALLOC_", "LD_PRELOAD", "OMP_"))}
    return info


def _provenance(report: dict) -> str:
    m = report["machine"]
    hw = m.get("gpu") or f"{m['cpu']} ({m['cpu_count']} cores)"
    env = " ".join(f"{k}={v}" for k, v in m.get("env", {}).items())
    return (
        f"`{(env + ' ') if env else ''}{report['command']}` on {hw}, torch {m['torch']}, transformers "
        f"{m['transformers']}, trl {m['trl']}, {report['date']}."
    )


def markdown_sections(report: dict) -> dict[str, str]:
    """Markdown per page section: ``<device>`` (configurations and ratios) and ``<device>-sweep``, when run."""
    s, device, sections = report["settings"], report["device"], {}
    label = report.get("label") or ""
    title = device.upper() + (f" ({label})" if label else "")
    device = device + (f"-{label}" if label else "")
    if report["results"]:
        lines = [
            f"### {title}: {s['shape']} ({s['dtype']}), {s['pairs']} pairs, prompt {s['prompt_len']} "
            f"+ response {s['response_len']}",
            "",
            f"{_provenance(report)} Median of {s['steps']} steps after {s['warmup']} warm-up.",
            "",
            "| configuration | step (s) | tokens/s | peak memory (MiB) | attribution (s) | anchor sampling (s) |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for r in report["results"]:
            att, anc = r["extra"].get("time/attribution"), r["extra"].get("time/anchor_sampling")
            lines.append(
                f"| {r['name']} | {r['step_s']:.3f} | {r['tokens_per_s']:.0f} | {r['peak_mem_mb']:.0f} | "
                f"{'' if att is None else f'{att:.3f}'} | {'' if anc is None else f'{anc:.3f}'} |"
            )
        lines += ["", "| ratio | measured | target | met |", "| --- | --- | --- | --- |"]
        for r in report["ratios"]:
            lines.append(f"| {r['ratio']} (vs {r['denominator']}) | {r['value']:.2f} | ≤ {r['target']} | "
                         f"{'yes' if r['met'] else '**no**'} |")  # fmt: skip
        sections[device] = "\n".join(lines) + "\n"
    if report["sweep"]:
        lens = sorted({r["prompt_len"] + r["response_len"] + 1 for r in report["sweep"]})
        lines = [f"### {title}: step time (s) against sequence length, {s['shape']} ({s['dtype']}), "
                 f"{s['pairs']} pairs, prompt = length / 4", "",
                 f"{_provenance(report)} Median of {s['sweep_steps']} step(s) after {s['warmup']} warm-up.", "",
                 "| configuration | " + " | ".join(str(n) for n in lens) + " |",
                 "| --- |" + " --- |" * len(lens)]  # fmt: skip
        for name in SWEEP:
            cells = {r["prompt_len"] + r["response_len"] + 1: r["step_s"] for r in report["sweep"] if r["name"] == name}
            lines.append(f"| {name} | " + " | ".join(f"{cells[n]:.2f}" if n in cells else "" for n in lens) + " |")
        sections[f"{device}-sweep"] = "\n".join(lines) + "\n"
    return sections


def write_markdown(path: Path, section: str, text: str) -> None:
    """Replace one section of ``path`` (between its markers), keeping the rest of the page."""
    start, end = f"<!-- speed:{section} -->", f"<!-- /speed:{section} -->"
    page = path.read_text() if path.exists() else "# Performance\n\n"
    block = f"{start}\n{text}{end}\n"
    if start in page and end in page:
        page = page[: page.index(start)] + block + page[page.index(end) + len(end) + 1 :]
    else:
        page = page.rstrip("\n") + "\n\n" + block
    path.write_text(page)


def make_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--shape", choices=tuple(SHAPES), help="default: smollm2-135m on CPU, qwen2.5-0.5b on GPU")
    p.add_argument("--pairs", type=int, help="pairs per step (default: 2 on CPU, 4 on GPU)")
    p.add_argument("--prompt_len", type=int, help="default: 64 on CPU, 256 on GPU")
    p.add_argument("--response_len", type=int, help="default: 192 on CPU, 768 on GPU")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--steps", type=int, default=3, help="timed steps per configuration (median reported)")
    p.add_argument("--configs", default=",".join(CONFIGS), help="comma-separated subset of: " + ", ".join(CONFIGS))
    p.add_argument("--sweep", default=None, help="sequence lengths for the sweep, e.g. 256,512,1024,2048 ('' = none)")
    p.add_argument("--sweep_steps", type=int, default=None, help="timed steps per sweep point (default: --steps)")
    p.add_argument("--quick", action="store_true", help="tiny model, 1 step each, no sweep, nothing written to docs/")
    p.add_argument("--json", type=Path, help="where the JSON goes (default: benchmarks/results/speed-<device>.json)")
    p.add_argument("--markdown", type=Path, help="page to update (default: docs/performance.md; none with --quick)")
    p.add_argument("--scratch", type=Path, default=Path("/tmp/tidpo-speed"))
    p.add_argument(
        "--label", default="", help="names a separate page section and JSON file (e.g. an allocator setting)"
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    if args.label and not all(c.isalnum() or c == "-" for c in args.label):
        raise SystemExit(f"--label may hold letters, digits and '-' only, got {args.label!r}")
    device = torch.device("cuda" if args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
                          else "cpu")  # fmt: skip
    gpu = device.type == "cuda"
    if args.quick:
        args.shape, args.warmup, args.steps = args.shape or "tiny", 1, 1
        args.pairs, args.prompt_len, args.response_len = args.pairs or 2, args.prompt_len or 8, args.response_len or 24
        args.sweep = args.sweep or ""
    args.shape = args.shape or ("qwen2.5-0.5b" if gpu else "smollm2-135m")
    args.pairs = args.pairs or (4 if gpu else 2)
    args.prompt_len = args.prompt_len or (256 if gpu else 64)
    args.response_len = args.response_len or (768 if gpu else 192)
    if args.sweep is None:
        args.sweep = "256,512,1024,2048" if gpu else "256,512,1024"
    args.sweep_steps = args.sweep_steps or args.steps
    dtype = torch.bfloat16 if gpu else torch.float32
    names = [n.strip() for n in args.configs.split(",") if n.strip()]
    unknown = [n for n in names if n not in CONFIGS]
    if unknown:
        raise SystemExit(f"unknown configuration(s) {unknown}; choose from {list(CONFIGS)}")
    # imported before any measurement, so that no configuration's memory includes the imports
    from trl import DPOConfig, DPOTrainer  # noqa: F401

    from tidpo import TIDPOConfig, TIDPOTrainer  # noqa: F401

    results = {}
    for name in names:
        print(f"[speed] {name} ...", flush=True)
        results[name] = run_config(name, args, device, dtype, args.prompt_len, args.response_len, args.steps)
        print(f"[speed] {name}: {results[name].step_s:.3f} s/step, {results[name].peak_mem_mb:.0f} MiB", flush=True)
    sweep = []
    for length in [int(x) for x in args.sweep.split(",") if x.strip()]:
        for name in SWEEP:
            print(f"[speed] sweep {name} @ {length} ...", flush=True)
            prompt_len, response_len = length // 4, length - length // 4 - 1  # + EOS = length tokens a row
            sweep.append(run_config(name, args, device, dtype, prompt_len, response_len, args.sweep_steps))
    report = {
        "command": "python benchmarks/speed.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "date": dt.date.today().isoformat(),
        "device": device.type,
        "label": args.label,
        "machine": machine(),
        "settings": {
            "shape": args.shape,
            "dtype": str(dtype).removeprefix("torch."),
            "pairs": args.pairs,
            "prompt_len": args.prompt_len,
            "response_len": args.response_len,
            "warmup": args.warmup,
            "steps": args.steps,
            "sweep_steps": args.sweep_steps,
        },
        "results": [asdict(r) for r in results.values()],
        "ratios": ratios(results),
        "sweep": [asdict(r) for r in sweep],
    }
    json_path = args.json or (
        ROOT
        / "benchmarks"
        / "results"
        / f"speed-{'quick' if args.quick else device.type}{'-' + args.label if args.label else ''}.json"
    )
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    sections = markdown_sections(report)
    print("\n".join(sections.values()))
    md = args.markdown or (None if args.quick else ROOT / "docs" / "performance.md")
    for key, text in sections.items() if md is not None else ():
        write_markdown(md, key, text)
    print(f"[speed] JSON: {json_path}" + (f"; markdown: {md}" if md else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
