"""The learning-rate schedule of pix2pix and CycleGAN: constant, then linear decay.

``schedule: epochs`` (the default) is ``lambda_rule`` of pytorch-CycleGAN-and-pix2pix
(``--lr_policy linear``), stepped once per epoch: epochs ``0 .. epochs-1`` train at the initial
rate, then epoch ``epochs + k`` at ``1 - (k + 1) / (epochs_decay + 1)`` of it, down to
``1 / (epochs_decay + 1)`` in the last epoch (and 0 after it). With ``max_steps`` or
``cpu_budget_s`` a run just stops early on this schedule, where the rate may still be high.

``schedule: budget`` lays the same shape over the run's progress instead, stepped after every
optimizer step: progress is the larger of steps / planned steps (``max_steps`` included) and
CPU seconds / ``cpu_budget_s``; the rate is constant for the first ``epochs / (epochs +
epochs_decay)`` of it and falls linearly to 0 at 1. A run stopped by its CPU budget so ends its
decay however fast the machine is (or however busy: CPU time per step rises when other jobs
share the cores).
"""

from __future__ import annotations

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR


class LinearDecay:
    """Multiplier of the initial learning rate for an epoch (a callable object, so that
    ``LambdaLR.state_dict`` saves its fields)."""

    def __init__(self, epochs: int, epochs_decay: int) -> None:
        self.epochs = epochs
        self.epochs_decay = epochs_decay

    def __call__(self, epoch: int) -> float:
        return max(0.0, 1.0 - max(0, epoch + 1 - self.epochs) / float(self.epochs_decay + 1))


class PacedDecay:
    """Multiplier of the initial learning rate for the run's progress in [0, 1], which the
    loop sets in ``progress`` before it steps the schedulers (the step count is ignored)."""

    def __init__(self, epochs: int, epochs_decay: int) -> None:
        self.constant = epochs / max(1, epochs + epochs_decay)  # share of the run at the full rate
        self.progress = 0.0

    def __call__(self, _step: int) -> float:
        if self.progress <= self.constant or self.constant >= 1.0:
            return 1.0
        return max(0.0, (1.0 - self.progress) / (1.0 - self.constant))


def linear_decay_schedulers(
    optimizers: dict[str, Optimizer], rule: LinearDecay | PacedDecay
) -> dict[str, LambdaLR]:
    """One LambdaLR per optimizer, by the same names, all following ``rule``."""
    return {name: LambdaLR(opt, rule) for name, opt in optimizers.items()}
