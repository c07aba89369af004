"""The metric buffer keeps its sums on the device until a log: the same averages as reading every metric back at
once (its naive twin, below), with no read back to the host while metrics are added."""

from __future__ import annotations

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from tidpo.training.metrics import MetricBuffer, host_values


def naive_averages(added: list[tuple[str, torch.Tensor | float]]) -> dict[str, float]:
    """Every value read back as it comes (``.item()`` of its float32 sum), summed on the host in float64."""
    sums: dict[str, list] = {}
    for name, value in added:
        if isinstance(value, torch.Tensor):
            flat = value.detach().float().reshape(value.shape[0] if value.ndim else 1, -1)
            total, count = flat.sum().item(), flat.numel()
        else:
            total, count = float(value), 1
        entry = sums.setdefault(name, [0.0, 0])
        entry[0] += total
        entry[1] += count
    return {name: total / count for name, (total, count) in sums.items()}


class HostReads(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.count += func is torch.ops.aten._local_scalar_dense.default
        return func(*args, **(kwargs or {}))


def test_the_averages_equal_the_naive_twins_exactly_and_nothing_is_read_back_before_pop():
    generator = torch.Generator().manual_seed(0)
    added = []
    for step in range(5):
        added += [
            ("rewards/chosen", torch.randn(4, generator=generator) * 10 ** (step - 2)),
            ("entropy", torch.rand(4, 2, generator=generator, dtype=torch.float64)),
            ("loss/base", torch.tensor(0.1 * step + 1e-7)),
            ("time/attribution", 0.001 * step),  # a float: counts once
        ]
    added.append(("weights/max", torch.tensor([float("nan")])))  # NaN stays NaN, never zeroed
    buffer = MetricBuffer()
    with HostReads() as reads:
        for name, value in added:
            buffer.add("train", name, value)
    assert reads.count == 0
    got, expected = buffer.pop("train"), naive_averages(added)
    assert set(got) == set(expected) and got["weights/max"] != got["weights/max"]
    assert all(got[k] == expected[k] for k in expected if k != "weights/max")  # exactly, not approximately
    assert buffer.pop("train") == {}


def test_host_values_keeps_floats_and_reads_tensors():
    values = {"a": torch.tensor(1.5, dtype=torch.float64), "b": 2.0, "c": torch.tensor([3.25])}
    assert host_values(values) == {"a": 1.5, "b": 2.0, "c": 3.25}
