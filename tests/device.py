"""The tests' device switch (``pytest --device cuda``, see tests/conftest.py): factory calls without a device
build on the chosen one, as ``torch.set_default_device`` does, except those given a generator, which stay where
their generator is (a data sampler's CPU generator keeps working)."""

from __future__ import annotations

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._device import _device_constructors


class DefaultDevice(TorchFunctionMode):
    def __init__(self, device: str):
        super().__init__()
        self.device = torch.device(device)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in _device_constructors() and kwargs.get("device") is None and kwargs.get("generator") is None:
            kwargs["device"] = self.device
        return func(*args, **kwargs)


def current_device() -> torch.device:
    """Where the tests' tensors are built (cpu unless ``--device``)."""
    return torch.empty(0).device


def cpu_only_default_layout(test):
    """For tests of how ``share_prompt`` left unset falls back: on a GPU it runs whole rows by choice, unprobed."""
    import pytest

    reason = "on a GPU share_prompt left unset runs whole rows by choice (no fallback to probe)"
    return pytest.mark.skipif(current_device().type == "cuda", reason=reason)(test)
