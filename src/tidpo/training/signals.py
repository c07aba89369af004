"""SIGTERM and SIGINT (preemption, Ctrl-C) end a run cleanly: the step in progress finishes, a checkpoint is
written, training stops, and ``tidpo train`` exits with status 128 + the signal's number (143 for SIGTERM, 130 for
SIGINT).

The handler only records the signal, so nothing is interrupted halfway. At the end of every step the processes
agree on it (one all-reduce of a flag when there are several), so all of them save and stop at the same step and
none saves alone. A second signal while the first is being handled stops at once, without a checkpoint.
"""

from __future__ import annotations

import signal
import sys
import threading

import torch
from transformers import TrainerCallback

HANDLED = (signal.SIGTERM, signal.SIGINT)


def exit_status(signum: int) -> int:
    """The documented exit status of a run stopped by ``signum``: 128 + its number, as a shell reports it."""
    return 128 + int(signum)


class StopOnSignal(TrainerCallback):
    """Finish the step, save a checkpoint and stop training on SIGTERM or SIGINT (see the module).

    After ``trainer.train()`` returns, ``received`` is the signal (an ``int``) that stopped it, or None, and
    ``step`` the last step trained.
    """

    def __init__(self, signals=HANDLED):
        self.signals = tuple(signals)
        self.received: int | None = None  # this process's signal, or the agreed one after a stop
        self.step: int | None = None
        self._previous: dict = {}

    def _handle(self, signum, frame) -> None:
        if self.received is not None:  # the second one: stop now
            self.restore()
            if signum == signal.SIGINT:
                raise KeyboardInterrupt
            raise SystemExit(exit_status(signum))
        self.received = signum
        name = signal.Signals(signum).name
        print(
            f"\ntidpo: {name} received: finishing this step, then saving a checkpoint and stopping "
            f"(send it again to stop at once, without a checkpoint)",
            file=sys.stderr,
            flush=True,
        )

    def on_train_begin(self, args, state, control, **kwargs):
        if threading.current_thread() is threading.main_thread():
            for signum in self.signals:
                self._previous[signum] = signal.signal(signum, self._handle)

    def _agreed(self, args) -> int:
        """The signal any process received (0: none), the same on every process."""
        if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
            return self.received or 0  # one process: no device round trip on the step
        flag = torch.tensor([float(self.received or 0)], device=args.device)
        torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
        return int(flag.item())

    def on_step_end(self, args, state, control, **kwargs):
        signum = self._agreed(args)
        if signum:
            self.received, self.step = signum, state.global_step
            control.should_save = True
            control.should_training_stop = True
        return control

    def on_train_end(self, args, state, control, **kwargs):
        self.restore()

    def restore(self) -> None:
        """Put back the handlers that were there before training."""
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous.clear()
