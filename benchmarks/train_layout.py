"""``python -m benchmarks.train_layout``: do channels_last and ``torch.compile`` pay for a
shipped training recipe on this machine? (issue 6: keep them only if they do)

    python -m benchmarks.train_layout [--config configs/faces-sketch2photo.yaml]
        [--variants eager,channels_last,compile,channels_last+compile] [--steps 10] [--repeats 3]

Builds the recipe of ``--config`` (its image size, batch size and options: the shipped face
recipe by default, Inception perceptual loss included) once per variant, prepares its nets
as the training loop does (``prepare_nets``: channels_last, ``torch.compile``), and times
``train_step`` on one fixed synthetic batch: warm-up steps first (for ``compile``, the
compilation, reported apart), then ``repeats`` rounds of ``steps`` steps, the variants
interleaved round by round so a change in the machine's load hits all of them alike. Prints
each variant's median images/s and its ratio to eager.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from benchmarks.common import load_average, machine_info, markdown_table, print_machine, ratio
from benchmarks.train import load_recipes, make_batch
from services.trainer.config import TrainConfig, load_file
from services.trainer.data.loading import to_device
from services.trainer.engine.distributed import DistContext, prepare_nets
from services.trainer.recipes import base

log = logging.getLogger(__name__)

VARIANTS = ("eager", "channels_last", "compile", "channels_last+compile")


@dataclass
class Timed:
    """One variant: its recipe, its batch, and the images/s of each timed round."""

    variant: str
    recipe: base.Recipe
    batch: dict[str, torch.Tensor]
    batch_size: int
    amp: base.Amp
    warmup_s: float = 0.0
    rates: list[float] = field(default_factory=list)

    def steps(self, n: int) -> float:
        start = time.perf_counter()
        for _ in range(n):
            self.recipe.train_step(self.batch, self.amp)
        return time.perf_counter() - start


def build(config: TrainConfig, variant: str, warmup: int) -> Timed:
    recipe_cls = load_recipes()[config.recipe]
    device = torch.device("cpu")
    torch.manual_seed(0)
    recipe = recipe_cls(config, device)
    parts = variant.split("+")
    recipe.nets = prepare_nets(
        recipe.nets,
        DistContext(device),
        channels_last="channels_last" in parts,
        compile="compile" in parts,
    )
    for net in recipe.nets.values():
        net.train()
    batch_size = config.batch_size or recipe_cls.default_batch_size
    raw = make_batch(recipe_cls.data_kind, batch_size, recipe.image_size, device)
    batch = to_device(raw, device, channels_last="channels_last" in parts)  # as the loop does
    timed = Timed(variant, recipe, batch, batch_size, base.Amp("off", "cpu", None))
    timed.warmup_s = timed.steps(warmup)
    return timed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.train_layout",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", type=Path, default=Path("configs/faces-sketch2photo.yaml"))
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--steps", type=int, default=10, help="train steps per timed round")
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds per variant")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps (compilation)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    variants = [v for v in args.variants.split(",") if v]
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown:
        parser.error(f"unknown variants {unknown}; choose from {', '.join(VARIANTS)}")
    config = TrainConfig.model_validate({**load_file(args.config), "data": "synthetic://8"})
    print_machine(machine_info())
    print(f"torch threads: {torch.get_num_threads()}; load average {load_average()}\n")
    runs = [build(config, v, args.warmup) for v in variants]
    for _ in range(args.repeats):
        for run in runs:
            run.rates.append(args.steps * run.batch_size / run.steps(args.steps))
    eager = statistics.median(runs[0].rates) if variants[0] == "eager" else float("nan")
    rows = []
    for run in runs:
        median = statistics.median(run.rates)
        rows.append([run.variant, f"{median:.2f}", f"{ratio(median, eager):.2f}",
                     " / ".join(f"{r:.2f}" for r in run.rates), f"{run.warmup_s:.1f}"])  # fmt: skip
    header = ["variant", "img/s", "vs eager", "rounds", f"first {args.warmup} steps s"]
    print(f"{config.recipe}, {config.image_size} px, batch {runs[0].batch_size}, {args.config}\n")
    print(markdown_table(header, rows))
    print(f"\nload average at the end: {load_average()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
