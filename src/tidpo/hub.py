"""Models and datasets from the Hugging Face Hub, like TRL: a name that is no local path is tried as a Hub id.

The loads are the real ``from_pretrained`` / ``load_dataset`` calls. When they fail (offline, an unknown id, a gated
repository), :class:`HubLoadError` says so in one line with what to do: set ``HF_HUB_OFFLINE=0`` with network access,
or give a local path.
"""

from __future__ import annotations

import os
import re

# huggingface_hub's repository-id rule: "name" or "namespace/name" of word characters, "-" and ".", at most 96.
_HUB_ID = re.compile(r"^(?:[\w.-]+/)?[\w.-]+$")
_TRUE = {"1", "true", "yes", "on"}
# Model-loading options that take a dtype: tidpo's short spellings and TRL's/torch's long ones.
DTYPES = {
    "auto": "auto",
    "bf16": "bfloat16",
    "fp16": "float16",
    "fp32": "float32",
    "bfloat16": "bfloat16",
    "float16": "float16",
    "float32": "float32",
}


class HubLoadError(OSError):
    """A model or dataset that is neither local nor loadable from the Hub (the message is one line)."""


def looks_like_hub_id(name: str) -> bool:
    """Whether ``name`` has the shape of a Hub repository id (``org/name`` or ``name``)."""
    return (
        bool(_HUB_ID.match(name))
        and len(name) <= 96
        and "--" not in name
        and ".." not in name
        and not name.startswith((".", "-"))
        and not name.endswith((".", "-"))
    )


def hub_offline() -> bool:
    """``HF_HUB_OFFLINE`` is set (the Hub is then never contacted)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in _TRUE


def hub_failure(kind: str, name: str, err: BaseException, local: str) -> HubLoadError:
    """The one-line error of a failed Hub load of ``kind`` (``"model"``, ``"dataset"``) ``name``.

    Args:
        local: what a local alternative is (``"a local folder"``, ``"a local file or folder"``).
    """
    first = next((line.strip() for line in str(err).splitlines() if line.strip()), type(err).__name__)
    if hub_offline():
        fix = f"HF_HUB_OFFLINE=1 is set: set HF_HUB_OFFLINE=0 (with network access) to download it, or give {local}"
    elif _is_connection_problem(err):
        fix = f"the Hub could not be reached: check the network (or set HF_HUB_OFFLINE=1), or give {local}"
    else:
        fix = f"check the id (and `hf auth login` for a gated or private one), or give {local}"
    return HubLoadError(f"{kind} {name!r} is not {local}; as a Hub id it failed to load ({first}): {fix}")


def _is_connection_problem(err: BaseException) -> bool:
    text = str(err).lower()
    return isinstance(err, ConnectionError) or "couldn't connect" in text or "could not connect" in text


def model_init_kwargs(
    init_kwargs: dict | None = None,
    dtype: str | None = None,
    attn_implementation: str | None = None,
    trust_remote_code: bool = False,
) -> dict:
    """Keyword arguments of ``AutoModelForCausalLM.from_pretrained``: ``init_kwargs`` with the named settings on top
    (a dtype's short spelling, ``bf16``, becomes torch's, ``bfloat16``).

    Raises:
        ValueError: an unknown dtype.
    """
    kwargs = dict(init_kwargs or {})
    if dtype is not None:
        kwargs["dtype"] = dtype
    if attn_implementation is not None:
        kwargs["attn_implementation"] = attn_implementation
    if trust_remote_code:
        kwargs["trust_remote_code"] = True
    if isinstance(kwargs.get("dtype"), str):
        if kwargs["dtype"] not in DTYPES:
            raise ValueError(f"dtype {kwargs['dtype']!r} is not one of {', '.join(DTYPES)}")
        kwargs["dtype"] = DTYPES[kwargs["dtype"]]
    return kwargs
