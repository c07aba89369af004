"""What the commands share: the user-error type, and loading models and datasets with clear errors."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path


class CLIError(Exception):
    """A user's mistake (a missing file, a bad option): printed as one line, exit status 2."""


def check_folder_path(folder: Path, what: str) -> None:
    """``folder`` is, or can become, a folder: neither it nor a folder above it is a file."""
    for parent in [folder, *folder.parents]:
        if parent.exists() and not parent.is_dir():
            where = "is a file" if parent == folder else f"is under {parent}, which is a file"
            raise CLIError(f"{what} {folder} {where}; give a folder")


def check_writable_folder(folder: Path, what: str) -> None:
    """Create ``folder`` if needed and write (then remove) a file in it, so that a run fails before its work."""
    import tempfile

    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".tidpo-write-test-"):
            pass
    except OSError as err:
        raise CLIError(f"{what} {folder} cannot be written: {err.strerror or err}") from err


def resolve_model_path(name_or_path: str) -> str:
    """A built-in name (``smollm2-135m-instruct``) becomes its cached checkpoint; a folder and a Hub id stay as given.

    Raises:
        CLIError: a folder without a model, a name that is neither a folder nor a Hub id, a missing built-in package.
    """
    from tidpo.models import ModelSourceError, locate_model

    try:
        return locate_model(name_or_path)
    except (ModelSourceError, ImportError, FileNotFoundError) as err:
        raise CLIError(str(err)) from err


def is_adapter_folder(path: str) -> bool:
    """A PEFT adapter saved by ``save_pretrained`` (``adapter_config.json``, no full ``config.json``)."""
    return (Path(path) / "adapter_config.json").is_file()


def adapter_base(path: str) -> str:
    """The base model an adapter folder names (a built-in name, a folder or a Hub id)."""
    base = json.loads((Path(path) / "adapter_config.json").read_text()).get("base_model_name_or_path")
    if not base:
        raise CLIError(f"adapter {path}: its adapter_config.json names no base_model_name_or_path")
    return base


def load_tokenizer(name_or_path: str, trust_remote_code: bool = False):
    from tidpo.hub import HubLoadError
    from tidpo.models import load_pretrained_tokenizer

    try:
        tokenizer = load_pretrained_tokenizer(name_or_path, trust_remote_code=trust_remote_code)
    except HubLoadError as err:
        raise CLIError(str(err)) from err
    except (OSError, ValueError) as err:
        raise CLIError(f"could not load a tokenizer from {name_or_path}: {str(err).splitlines()[0]}") from err
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


@contextlib.contextmanager
def _damaged_weights(where: str):
    """A truncated or corrupt safetensors file as one line instead of the library's traceback."""
    try:
        yield
    except Exception as err:
        if type(err).__name__ != "SafetensorError" and "safetensors" not in (type(err).__module__ or ""):
            raise
        first = next((line for line in str(err).splitlines() if line.strip()), type(err).__name__)
        raise CLIError(
            f"{where}: a weights file cannot be read ({first}): it is truncated or damaged; save or copy it again"
        ) from err


def load_causal_lm(name_or_path: str, init_kwargs: dict | None = None):
    """Load ``(model, tokenizer)`` from a built-in name, a folder or a Hub id; a PEFT adapter folder loads its base
    model (named in ``adapter_config.json``, the same kinds) with the adapter on top.

    Args:
        init_kwargs: keyword arguments of ``from_pretrained`` (``dtype``, ``attn_implementation``,
            ``trust_remote_code``, ...; :func:`tidpo.hub.model_init_kwargs`).

    Raises:
        CLIError: the model cannot be found or loaded, or is not a causal LM.
    """
    init_kwargs = dict(init_kwargs or {})
    path = resolve_model_path(name_or_path)
    base = adapter_base(path) if is_adapter_folder(path) else name_or_path
    model = _load_weights(base, init_kwargs, adapter=path if base != name_or_path else None)
    if base != name_or_path:
        from peft import PeftModel

        with _damaged_weights(path):
            model = PeftModel.from_pretrained(model, path)
    has_tokenizer = is_adapter_folder(path) and (Path(path) / "tokenizer_config.json").is_file()
    tokenizer = load_tokenizer(
        name_or_path if has_tokenizer or base == name_or_path else base,
        trust_remote_code=bool(init_kwargs.get("trust_remote_code")),
    )
    return model, tokenizer


def _load_weights(base: str, init_kwargs: dict, adapter: str | None):
    """The causal LM of ``base``; a load error is one line (naming ``adapter`` when loading an adapter's base)."""
    from tidpo.hub import HubLoadError
    from tidpo.models import ModelSourceError, load_pretrained_causal_lm

    try:
        with _damaged_weights(base):
            return load_pretrained_causal_lm(base, **init_kwargs)
    except (HubLoadError, ModelSourceError) as err:
        raise CLIError(f"adapter {adapter}: {err}" if adapter is not None else str(err)) from err
    except ValueError as err:  # "Unrecognized configuration class ... for AutoModelForCausalLM"
        raise CLIError(f"{base} is not a causal language model: {str(err).splitlines()[0]}") from err
    except OSError as err:
        raise CLIError(f"could not load a model from {base}: {str(err).splitlines()[0]}") from err


def trained_settings(args, model: str, defaults: dict, command: str) -> None:
    """Fill the options of ``defaults`` left unset (None) on the command line: from the settings the model was
    trained with (``tidpo_config.json`` in its folder, written by ``save_model``), else from ``defaults``; say on
    stderr which were taken from the folder. ``kl_weight`` is taken only together with ``kl_mode``."""
    import sys

    from tidpo.training.outputs import SETTINGS_FILE

    file = Path(model) / SETTINGS_FILE if Path(model).is_dir() else None
    saved = json.loads(file.read_text(encoding="utf-8")) if file is not None and file.is_file() else {}
    taken = []
    for name, default in defaults.items():
        if getattr(args, name) is not None:
            continue
        restorable = name in saved and (name != "kl_weight" or "kl_mode" in taken)
        setattr(args, name, saved[name] if restorable else default)
        if restorable:
            taken.append(name)
    if taken:
        values = ", ".join(f"{name} {getattr(args, name)}" for name in taken)
        print(f"tidpo {command}: as trained ({file}): {values}; flags override", file=sys.stderr)


def load_dataset_arg(
    name_or_path: str,
    split: str = "train",
    config_name: str | None = None,
    on_bad_row: str = "error",
    skipped: list[str] | None = None,
):
    """A built-in dataset name (``demo``), a file/folder or a Hub dataset id, loaded and checked as preference data
    (``on_bad_row``/``skipped`` as in :func:`tidpo.load_preference_data`)."""
    from tidpo.data import PreferenceDataError, load_preference_data
    from tidpo.data.preference import FILE_SUFFIXES
    from tidpo.hub import HubLoadError, looks_like_hub_id
    from tidpo.resources import BUILTIN_DATASETS, builtin_dataset_path

    source = builtin_dataset_path(name_or_path, split) if name_or_path in BUILTIN_DATASETS else name_or_path
    path = Path(source)
    if not path.exists() and (path.suffix.lower() in FILE_SUFFIXES or not looks_like_hub_id(name_or_path)):
        known = ", ".join(BUILTIN_DATASETS)
        raise CLIError(
            f"dataset {name_or_path!r} is neither a file/folder, a built-in dataset ({known}) nor a Hub dataset id"
        )
    if config_name is not None and path.exists():
        raise CLIError(f"--dataset_config {config_name!r} is for a Hub dataset; {name_or_path} is local")
    try:
        return load_preference_data(
            source, split=split, config_name=config_name, on_bad_row=on_bad_row, skipped=skipped
        )
    except (PreferenceDataError, HubLoadError, FileNotFoundError, ValueError) as err:
        raise CLIError(str(err)) from err
