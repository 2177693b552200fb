"""The learning-rate schedule of pix2pix and CycleGAN: constant, then linear decay.

As ``lambda_rule`` in pytorch-CycleGAN-and-pix2pix (``--lr_policy linear``), stepped once per
epoch: epochs ``0 .. epochs-1`` train at the initial rate, then epoch ``epochs + k`` at
``1 - (k + 1) / (epochs_decay + 1)`` of it, down to ``1 / (epochs_decay + 1)`` in the last
epoch (and 0 after it). With ``max_steps`` a run just stops early on this schedule.
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


def linear_decay_schedulers(
    optimizers: dict[str, Optimizer], epochs: int, epochs_decay: int
) -> dict[str, LambdaLR]:
    """One LambdaLR per optimizer, by the same names."""
    return {
        name: LambdaLR(opt, LinearDecay(epochs, epochs_decay)) for name, opt in optimizers.items()
    }
