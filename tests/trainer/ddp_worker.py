"""Started by torchrun in test_ddp: the trainer CLI with a pix2pix that dumps each rank's weights.

    ddp_worker.py SYNC_BN_OUT <trainer CLI arguments>

First, in the process group it starts (the loop then trains in it), each rank normalises its
half of a fixed batch with GlooSyncBatchNorm and saves outputs and gradients to SYNC_BN_OUT.
Then the CLI trains ``pix2pix-rank-dump``: pix2pix that also writes ``init-rank<R>.pt`` when
built and ``final-rank<R>.pt`` after every step into the run folder.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

from services.trainer.commands import main
from services.trainer.engine.sync_batchnorm import GlooSyncBatchNorm, convert_sync_batchnorm
from services.trainer.recipes.base import Amp, register, unwrap
from services.trainer.recipes.pix2pix import Pix2PixRecipe
from tests.trainer.tiny_runs import SYNC_BN_SEED


def sync_batchnorm_check(out: Path) -> None:
    """Rank r normalises items 2r, 2r+1 of a (4, 3, 5, 5) batch; saves y, dx, dw, stats."""
    rank = dist.get_rank()
    x = torch.randn(4, 3, 5, 5, generator=torch.Generator().manual_seed(SYNC_BN_SEED))
    bn = convert_sync_batchnorm(nn.BatchNorm2d(3), torch.device("cpu"))
    assert isinstance(bn, GlooSyncBatchNorm)
    shard = x[2 * rank : 2 * rank + 2].clone().requires_grad_(True)
    y = bn(shard)  # (2, 3, 5, 5)
    (y * torch.arange(y.numel()).view_as(y)).sum().backward()
    out.mkdir(parents=True, exist_ok=True)
    torch.save(
        {
            "y": y.detach(),
            "grad": shard.grad,
            "mean": bn.running_mean,
            "var": bn.running_var,
            "wgrad": bn.weight.grad,
        },
        out / f"rank{rank}.pt",
    )


@register
class RankDumpPix2Pix(Pix2PixRecipe):
    name = "pix2pix-rank-dump"

    def build(self) -> None:
        super().build()
        self.dump("init")

    def train_step(self, batch: dict[str, Tensor], amp: Amp) -> dict[str, float]:
        losses = super().train_step(batch, amp)
        self.dump("final")
        return losses

    def dump(self, tag: str) -> None:
        rank = dist.get_rank() if dist.is_initialized() else 0
        folder = Path(str(self.config.run_dir))
        folder.mkdir(parents=True, exist_ok=True)
        state: dict[str, Any] = {
            name: {k: v.detach().cpu().clone() for k, v in unwrap(net).state_dict().items()}
            for name, net in self.nets.items()
        }
        state["types"] = sorted(
            {type(m).__name__ for net in self.nets.values() for m in unwrap(net).modules()}
        )
        torch.save(state, folder / f"{tag}-rank{rank}.pt")


if __name__ == "__main__":
    dist.init_process_group("gloo")  # the loop trains in this group and leaves it to us
    try:
        sync_batchnorm_check(Path(sys.argv[1]))
        code = main(sys.argv[2:])
    finally:
        dist.destroy_process_group()
    sys.exit(code)
