"""What the commands share: the user-error type, and loading models and datasets with clear errors."""

from __future__ import annotations

import json
from pathlib import Path


class CLIError(Exception):
    """A user's mistake (a missing file, a bad option): printed as one line, exit status 2."""


def resolve_model_path(name_or_path: str) -> str:
    """A built-in name (``smollm2-135m-instruct``) becomes its cached checkpoint; a path must be a folder."""
    from tidpo.models import BUILTIN_MODELS, builtin_model_path

    if name_or_path in BUILTIN_MODELS:
        try:
            return str(builtin_model_path(name_or_path))
        except (ImportError, FileNotFoundError) as err:
            raise CLIError(str(err)) from err
    path = Path(name_or_path)
    if not path.is_dir():
        known = ", ".join(BUILTIN_MODELS)
        raise CLIError(f"model {name_or_path!r} is neither a local folder nor a built-in model ({known})")
    if not (path / "config.json").is_file() and not (path / "adapter_config.json").is_file():
        raise CLIError(f"model folder {path} has no config.json (nor adapter_config.json): not a Hugging Face model")
    return str(path)


def is_adapter_folder(path: str) -> bool:
    """A PEFT adapter saved by ``save_pretrained`` (``adapter_config.json``, no full ``config.json``)."""
    return (Path(path) / "adapter_config.json").is_file()


def load_tokenizer(path: str):
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError) as err:
        raise CLIError(f"could not load a tokenizer from {path}: {err}") from err
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_causal_lm(name_or_path: str, dtype: str | None = None):
    """Load ``(model, tokenizer)``; a PEFT adapter folder loads its base model with the adapter on top.

    Raises:
        CLIError: the folder is missing, is not a causal LM, or its adapter's base cannot be found.
    """
    from transformers import AutoModelForCausalLM

    path = resolve_model_path(name_or_path)
    kwargs = {"dtype": dtype} if dtype else {}
    base_path = path
    if is_adapter_folder(path):
        base_path = json.loads((Path(path) / "adapter_config.json").read_text()).get("base_model_name_or_path")
        if not base_path or not Path(base_path).is_dir():
            raise CLIError(f"adapter {path}: its base model {base_path!r} is not a local folder")
    try:
        model = AutoModelForCausalLM.from_pretrained(base_path, **kwargs)
    except ValueError as err:  # "Unrecognized configuration class ... for AutoModelForCausalLM"
        raise CLIError(f"{base_path} is not a causal language model: {str(err).splitlines()[0]}") from err
    except OSError as err:
        raise CLIError(f"could not load a model from {base_path}: {str(err).splitlines()[0]}") from err
    if base_path != path:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, path)
    tokenizer = load_tokenizer(path if (Path(path) / "tokenizer_config.json").is_file() else base_path)
    return model, tokenizer


def load_dataset_arg(name_or_path: str, split: str = "train"):
    """A built-in dataset name (``demo``) or a file/folder, loaded and validated as preference data."""
    from tidpo.data import PreferenceDataError, load_preference_data
    from tidpo.resources import BUILTIN_DATASETS, builtin_dataset_path

    source = builtin_dataset_path(name_or_path, split) if name_or_path in BUILTIN_DATASETS else name_or_path
    if not Path(source).exists():
        known = ", ".join(BUILTIN_DATASETS)
        raise CLIError(f"dataset {name_or_path!r} is neither a file/folder nor a built-in dataset ({known})")
    try:
        return load_preference_data(source, split=split)
    except (PreferenceDataError, FileNotFoundError, ValueError) as err:
        raise CLIError(str(err)) from err
