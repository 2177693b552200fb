"""Training throughput: images/s per recipe, fp32 against AMP, measured in one run.

    python -m benchmarks.train [--quick] [--scale cpu|paper] [--amp bf16|fp16]
        [--recipes pix2pix,cyclegan,...] [--steps N] [--repeats R]

Each recipe runs ``train_step`` on fixed synthetic batches (no data loading: this measures
the optimisation step), after warm-up steps, ``repeats`` times; the table gives the median
images/s of fp32 and of the AMP mode, and their ratio. ``--scale paper`` uses each recipe's
paper sizes (a GPU's job); ``--scale cpu`` shrinks widths and images so a 2-core machine
finishes in minutes. bf16 autocast runs on CPU too; fp16 needs CUDA.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import torch

from benchmarks.common import machine_info, markdown_table, print_machine, ratio
from services.trainer.config import TrainConfig
from services.trainer.recipes import base

# per recipe: (image size, batch size, options) for --scale cpu
CPU_SCALE: dict[str, tuple[int, int, dict[str, Any]]] = {
    "pix2pix": (64, 4, {"ngf": 16, "ndf": 16}),
    "resnet-cgan": (64, 4, {"ngf": 16, "ndf": 16}),
    "cyclegan": (64, 1, {"ngf": 16, "ndf": 16}),
    "sketchygan": (64, 4, {"ngf": 16, "ndf": 16, "noise_dim": 32, "lambda_perceptual": 0}),
    "siamese-gan": (32, 32, {"ngf": 32, "ndf": 32, "conditional": False}),
    "vae": (32, 32, {"nf": 32}),
}


def load_recipes() -> dict[str, type[base.Recipe]]:
    from services.trainer.recipes import (  # noqa: F401  (registers every recipe)
        cyclegan,
        pix2pix,
        resnet_cgan,
        siamese_gan,
        sketchygan,
        vae,
    )

    return base.RECIPES


def make_batch(kind: str, n: int, size: int, device: torch.device) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    images = lambda: torch.rand((n, 3, size, size), generator=gen) * 2 - 1  # noqa: E731
    batch = {"A": images(), "B": images()} if kind != "images" else {"B": images()}
    if kind == "images":
        batch["label"] = torch.randint(0, 2, (n,), generator=gen)
    return {k: v.to(device) for k, v in batch.items()}


def images_per_s(
    recipe_cls: type[base.Recipe],
    *,
    scale: str,
    amp_mode: str,
    steps: int,
    repeats: int,
    device: torch.device,
) -> tuple[float, list[float]]:
    name = recipe_cls.name
    size, batch_size, options = (
        CPU_SCALE[name]
        if scale == "cpu"
        else (recipe_cls.default_image_size, recipe_cls.default_batch_size, {})
    )
    config = TrainConfig(
        recipe=name,
        data="synthetic://8",
        image_size=size,
        batch_size=batch_size,
        options=options,
        amp=amp_mode,  # type: ignore[arg-type]
    )
    torch.manual_seed(0)
    recipe = recipe_cls(config, device)
    scaler = torch.amp.GradScaler(device.type) if amp_mode == "fp16" else None
    amp = base.Amp(amp_mode, device.type, scaler)  # type: ignore[arg-type]
    batch = make_batch(recipe_cls.data_kind, batch_size, size, device)
    for net in recipe.nets.values():
        net.train()

    def run(n: int) -> float:
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(n):
            recipe.train_step(batch, amp)
            amp.update()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start

    run(2)  # warm-up: allocator, autotuning, lazy imports
    rates = [steps * batch_size / run(steps) for _ in range(repeats)]
    return statistics.median(rates), rates


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.train", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="1 step, 1 repeat (smoke test)")
    parser.add_argument("--scale", choices=["cpu", "paper"], default=None)
    parser.add_argument("--amp", choices=["bf16", "fp16"], default=None)
    parser.add_argument("--recipes", default=",".join(CPU_SCALE))
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    scale = args.scale or ("paper" if device.type == "cuda" else "cpu")
    amp_mode = args.amp or ("fp16" if device.type == "cuda" else "bf16")
    steps, repeats = (1, 1) if args.quick else (args.steps, args.repeats)
    recipes = load_recipes()
    info = machine_info()
    print_machine(info)
    print(f"\nscale={scale} amp={amp_mode} steps={steps} repeats={repeats} device={device}\n")
    rows = []
    for name in args.recipes.split(","):
        fp32, fp32_all = images_per_s(
            recipes[name], scale=scale, amp_mode="off", steps=steps, repeats=repeats, device=device
        )
        mixed, mixed_all = images_per_s(
            recipes[name],
            scale=scale,
            amp_mode=amp_mode,
            steps=steps,
            repeats=repeats,
            device=device,
        )
        rows.append(
            [
                name,
                f"{fp32:.2f}",
                f"{mixed:.2f}",
                f"{ratio(mixed, fp32):.2f}",
                " / ".join(f"{r:.1f}" for r in fp32_all),
                " / ".join(f"{r:.1f}" for r in mixed_all),
            ]
        )
        print(f"{name}: amp/fp32 = {ratio(mixed, fp32):.2f}", flush=True)
    print()
    print(
        markdown_table(
            [
                "recipe",
                "fp32 img/s",
                f"{amp_mode} img/s",
                f"{amp_mode}/fp32",
                "fp32 runs",
                f"{amp_mode} runs",
            ],
            rows,
        )
    )


if __name__ == "__main__":
    main()
