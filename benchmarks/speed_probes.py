"""What ``benchmarks/speed.py`` measures with: the resident set's peak (sampled in a thread), each optimizer step's
wall time (a Trainer callback, synchronised on a GPU), a memory release between configurations so that each
starts from an honest baseline, and the machine's description."""

from __future__ import annotations

import ctypes
import gc
import os
import platform
import threading
import time
from pathlib import Path

import torch
from transformers import TrainerCallback


class RSSPeak:
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


class StepTimer(TrainerCallback):
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


def free_memory():
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)  # hand freed heap pages back, so RSS baselines are honest
    except OSError:
        pass


def machine() -> dict:
    info = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu_count": os.cpu_count(),
    }
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
