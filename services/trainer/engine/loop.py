"""The training loop: one recipe, one dataset, from the first step (or a checkpoint) to the end.

    progress = train(config, registry=Registry(root), on_progress=print, should_stop=flag)

Per step: a batch from the run's seeded, resumable loader (``data_loading``), one
``recipe.train_step`` under AMP, a GradScaler update. Every ``log_every`` steps: JSONL +
TensorBoard + ``on_progress``; every ``checkpoint_every`` steps and at every epoch end: a
checkpoint. Per epoch end: the learning-rate schedulers step (``schedules``), and every
``eval_every`` epochs an evaluation (metrics + sample grid), every ``publish_every`` epochs a
publish. At the end: evaluation, publish, checkpoint, ``Progress(state="finished")``.
``should_stop()`` is asked before every step: a stop writes a checkpoint and returns
``Progress(state="canceled")``; ``train(..., resume=checkpoint)`` continues exactly there.

Under torchrun every rank trains its shard (``distributed``); rank 0 alone logs, evaluates,
checkpoints and publishes, and calls ``on_progress``. Evaluation and exports run in
isolated RNG streams, so they never change what training draws (exact resume).
"""

from __future__ import annotations

import logging
import secrets
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from services.trainer.config import TrainConfig
from services.trainer.data.loading import open_run_data, to_device
from services.trainer.engine.checkpoint import (
    collect_state,
    load_checkpoint,
    restore_state,
    save_checkpoint,
)
from services.trainer.engine.compute import Compute
from services.trainer.engine.distributed import (
    DistContext,
    any_rank,
    barrier,
    max_over_ranks,
    prepare_nets,
    setup_distributed,
    teardown_distributed,
)
from services.trainer.engine.logging_utils import RunLogger, StepMeter
from services.trainer.engine.progress import Progress, PublishedVersion
from services.trainer.engine.schedules import LinearDecay, PacedDecay, linear_decay_schedulers
from services.trainer.engine.seeding import (
    capture_rng_state,
    deterministic_mode,
    isolated_rng,
    restore_rng_state,
    seed_everything,
)
from services.trainer.engine.weights import init_from
from services.trainer.evaluation.validation import Evaluator
from services.trainer.publishing.export import ExportError
from services.trainer.publishing.publish import publish_recipe
from services.trainer.recipes import get_recipe
from services.trainer.recipes.base import Amp
from shared.registry import Registry
from shared.settings import get_settings

log = logging.getLogger(__name__)

ProgressFn = Callable[[Progress], None]


def run_dir_for(config: TrainConfig, resume: Path | None) -> Path:
    """config.run_dir; else the resumed checkpoint's run; else a new folder under S2I_RUN_ROOT,
    ``<model_name or recipe>-<time>-<6 hex>`` (two runs started in the same second get two)."""
    if config.run_dir is not None:
        return Path(config.run_dir)
    if resume is not None and resume.parent.name == "checkpoints":
        return resume.parent.parent
    name = config.model_name or config.recipe
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return get_settings().run_root / f"{name}-{stamp}-{secrets.token_hex(3)}"


def train(
    config: TrainConfig,
    *,
    registry: Registry | None = None,
    on_progress: ProgressFn | None = None,
    should_stop: Callable[[], bool] | None = None,
    resume: Path | None = None,
) -> Progress:
    """Train ``config`` to the end, a stop request or ``max_steps``; returns the last Progress.

    registry: where versions are published (None: nothing is published).
    resume: a checkpoint of this run to continue from (same data order, RNG, schedules).
    """
    ctx = setup_distributed(config.device)
    try:
        with deterministic_mode(config.deterministic):
            run = _Run(config, ctx, registry, on_progress, resume)
            return run.execute(resume, should_stop or (lambda: False))
    finally:
        teardown_distributed(ctx)


class _Run:
    def __init__(
        self,
        config: TrainConfig,
        ctx: DistContext,
        registry: Registry | None,
        on_progress: ProgressFn | None,
        resume: Path | None,
    ) -> None:
        self.config, self.ctx, self.registry, self.on_progress = config, ctx, registry, on_progress
        seed_everything(config.seed + ctx.rank)
        cls = get_recipe(config.recipe)
        self.run_dir = run_dir_for(config, resume)
        self.batch_size = config.batch_size or cls.default_batch_size
        self.recipe = recipe = cls(config, ctx.device)
        self.compute = Compute()
        if config.init_from and resume is None:  # a resume restores the nets and compute
            self.compute.base = init_from(recipe, config.init_from, registry, config.init_skip)
        self.data = open_run_data(config, cls.data_kind, recipe.image_size, self.batch_size, ctx)
        recipe.see_training_set(self.data.train)
        epochs = config.epochs if config.epochs is not None else cls.default_epochs
        decay = config.epochs_decay if config.epochs_decay is not None else cls.default_epochs_decay
        self.total_epochs = max(1, epochs + decay)
        self.steps_per_epoch = self.data.steps_per_epoch
        self.total_steps = self.total_epochs * self.steps_per_epoch
        if config.max_steps is not None:
            self.total_steps = min(self.total_steps, config.max_steps)
        recipe.nets = prepare_nets(
            recipe.nets, ctx, channels_last=config.channels_last, compile=config.compile
        )
        scaler = torch.amp.GradScaler(ctx.device.type) if config.amp == "fp16" else None
        self.amp = Amp(config.amp, ctx.device.type, scaler)
        self.planned_steps = self.total_steps
        self.pace = PacedDecay(epochs, decay) if config.schedule == "budget" else None
        rule = self.pace or LinearDecay(epochs, decay)
        self.schedulers = linear_decay_schedulers(recipe.optimizers, rule)
        self.publish_metric = config.publish_metric or cls.default_publish_metric
        self.step = self.epoch = self.batch = 0
        self.events = {"eval": -1, "publish": -1, "checkpoint": -1}  # step of the latest
        self.metrics: dict[str, float] = {}
        self.published: list[PublishedVersion] = []
        self.checkpoint: str | None = None
        self.losses: dict[str, float] = {}
        self.images_per_s, self.step_time, self.message = 0.0, 0.0, ""
        self.meter = StepMeter()
        self.logger = RunLogger(self.run_dir) if ctx.is_main else None
        self.evaluator = Evaluator(
            self.data.heldout, device=ctx.device, max_samples=config.eval_samples,
            channels_last=config.channels_last, fid=self.publish_metric == "fid",
        )  # fmt: skip

    # --- state ---------------------------------------------------------------------------
    def load(self, path: Path) -> None:
        state = load_checkpoint(path)
        if state["recipe"] != self.config.recipe:
            raise ValueError(f"{path} is a {state['recipe']} checkpoint, not {self.config.recipe}")
        restore_state(self.recipe, self.schedulers, self.amp.scaler, state)
        self.step, self.epoch, self.batch = (int(state[k]) for k in ("step", "epoch", "batch"))
        self.metrics = dict(state["metrics"])
        if "compute" in state:
            self.compute.load_state_dict(state["compute"])
        self.published = [PublishedVersion.model_validate(p) for p in state["published"]]
        self.events.update(state.get("events", {}))
        same_world = int(state["data"]["world_size"]) == self.ctx.world_size
        if self.ctx.is_main and same_world:
            restore_rng_state(state["rng"])  # last: building the run drew from the RNGs
        else:
            seed_everything(self.config.seed + self.ctx.rank + self.step)
        self.checkpoint = str(path)
        log.info("resumed %s at step %d (epoch %d)", path, self.step, self.epoch)

    def save(self) -> None:
        if self.ctx.is_main:
            state = collect_state(
                self.recipe, self.schedulers, self.amp.scaler, step=self.step, epoch=self.epoch,
                batch=self.batch, rng=capture_rng_state(), world_size=self.ctx.world_size,
                metrics=self.metrics, published=[p.model_dump() for p in self.published],
            )  # fmt: skip
            state["events"] = {**self.events, "checkpoint": self.step}
            state["compute"] = {**self.compute.state_dict(), "totals": self.compute.totals()}
            self.checkpoint = str(save_checkpoint(self.run_dir, state))
        self.events["checkpoint"] = self.step

    # --- reporting -------------------------------------------------------------------------
    @property
    def epoch_of_step(self) -> int:
        """1-based epoch of the latest step (1 before the first)."""
        return min(self.total_epochs, max(1, -(-self.step // self.steps_per_epoch)))

    def steps_left(self) -> float:
        """Steps to the end of the schedule, or of the CPU budget at this run's CPU per step."""
        left = float(self.total_steps - self.step)
        budget, compute = self.config.cpu_budget_s, self.compute
        if budget is not None and compute.steps and compute.cpu_s > 0:
            left = min(left, max(0.0, budget - compute.cpu_s) * compute.steps / compute.cpu_s)
        return left

    def progress(self, state: str) -> Progress:
        eta = self.step_time * self.steps_left() if self.step_time else None
        return Progress(
            state=state, step=self.step, total_steps=self.total_steps,
            epoch=self.epoch_of_step, total_epochs=self.total_epochs,
            images_per_s=self.images_per_s, eta_s=eta, losses=self.losses, metrics=self.metrics,
            published=list(self.published), checkpoint=self.checkpoint,
            run_dir=str(self.run_dir), message=self.message,
        )  # fmt: skip

    def emit(self, state: str) -> Progress:
        progress = self.progress(state)
        if self.on_progress is not None and self.ctx.is_main:
            self.on_progress(progress)
        return progress

    # --- events ----------------------------------------------------------------------------
    def evaluate(self) -> None:
        if self.logger is not None:  # rank 0
            self.emit("evaluating")
            self.metrics = self.evaluator.record(
                self.recipe, step=self.step, epoch=self.epoch_of_step, run_dir=self.run_dir,
                logger=self.logger, seed=self.config.seed,
            )  # fmt: skip
        barrier(self.ctx)
        self.events["eval"] = self.step

    def publish(self, *, final: bool) -> None:
        if self.ctx.is_main and self.registry is None:
            log.info("no registry given: step %d not published", self.step)
        elif self.ctx.is_main and self.registry is not None and self.logger is not None:
            self.emit("publishing")
            try:
                with isolated_rng(self.config.seed):
                    new = publish_recipe(
                        self.recipe, self.registry, metrics=self.metrics, steps=self.step,
                        policy=self.config.publish, metric=self.publish_metric,
                        dataset=str(self.config.data), compute=self.compute.totals(),
                    )  # fmt: skip
            except ExportError as exc:
                if final:
                    raise
                self.message = f"publish at step {self.step} failed: {exc}"
                log.error("%s", self.message)
            else:
                self.published += new
                records = [p.model_dump() for p in new]
                self.logger.write({"event": "publish", "step": self.step, "published": records})
        barrier(self.ctx)
        self.events["publish"] = self.step

    def budget_spent(self) -> float:
        """Share of the CPU budget spent, the largest over the ranks, so that every rank uses
        one rate and all stop together (0 without a budget; one all-reduce under DDP)."""
        budget = self.config.cpu_budget_s
        return 0.0 if budget is None else max_over_ranks(self.ctx, self.compute.cpu_s) / budget

    def step_schedules(self, spent: float) -> None:
        """Per step with ``schedule: budget``: set the rates from the run's progress, the
        larger of the steps' share and the budget's ``spent`` share."""
        if self.pace is None:
            return
        self.pace.progress = max(self.step / self.planned_steps, spent)
        for scheduler in self.schedulers.values():
            scheduler.step()

    def end_epoch(self) -> None:
        if self.pace is None:  # schedule "epochs": stepped here, once per epoch
            for scheduler in self.schedulers.values():
                scheduler.step()
        self.epoch, self.batch = self.epoch + 1, 0
        if self.config.eval_every > 0 and self.epoch % self.config.eval_every == 0:
            self.evaluate()
        last = self.epoch >= self.total_epochs or self.step >= self.total_steps
        every = self.config.publish_every
        if every > 0 and self.epoch % every == 0 and not last:  # the last publish comes at the end
            self.publish(final=False)
        self.save()

    # --- training --------------------------------------------------------------------------
    def train_step(self, raw: dict[str, Any]) -> None:
        batch = to_device(raw, self.ctx.device, self.config.channels_last)
        losses = self.recipe.train_step(batch, self.amp)
        self.amp.update()
        self.step, self.batch = self.step + 1, self.batch + 1
        images = next(iter(batch.values())).shape[0] * self.ctx.world_size
        self.meter.add(losses, images)
        self.compute.add(1, images)
        if self.step % self.config.log_every == 0 or self.step == self.total_steps:
            self.losses, self.images_per_s, self.step_time = self.meter.flush()
            lr = {name: opt.param_groups[0]["lr"] for name, opt in self.recipe.optimizers.items()}
            if self.logger is not None:
                self.logger.train(
                    step=self.step, epoch=self.epoch_of_step, losses=self.losses, lr=lr,
                    images_per_s=self.images_per_s,
                )  # fmt: skip
            self.emit("running")

    def execute(self, resume: Path | None, should_stop: Callable[[], bool]) -> Progress:
        try:
            if resume is not None:
                self.load(resume)
            if self.ctx.is_main:
                self.run_dir.mkdir(parents=True, exist_ok=True)
                (self.run_dir / "config.json").write_text(self.config.model_dump_json(indent=2))
            for net in self.recipe.nets.values():
                net.train()
            return self._loop(should_stop)
        except Exception as exc:
            self.message = f"{type(exc).__name__}: {exc}"
            self.emit("failed")
            raise
        finally:
            if self.logger is not None:
                self.logger.close()

    def _loop(self, should_stop: Callable[[], bool]) -> Progress:
        show = self.ctx.is_main and sys.stderr.isatty()
        bar = tqdm(total=self.total_steps, initial=self.step, unit="step", disable=not show)
        self.meter.reset()
        self.compute.start()
        budget = self.config.cpu_budget_s
        try:
            while self.step < self.total_steps and self.epoch < self.total_epochs:
                start = self.step
                for raw in self.data.loader(self.epoch, skip_batches=self.batch):
                    if any_rank(self.ctx, should_stop()):
                        self.save()
                        log.info("stopped at step %d; resume from %s", self.step, self.checkpoint)
                        return self.emit("canceled")
                    self.train_step(raw)  # its log line shows the rate this step used
                    spent = self.budget_spent()
                    self.step_schedules(spent)
                    bar.update(1)
                    if self.step % self.config.log_every == 0:
                        bar.set_postfix({k: f"{v:.3g}" for k, v in self.losses.items()})
                    if self.step % self.config.checkpoint_every == 0:
                        self.save()
                    if budget is not None and spent >= 1.0:
                        log.info("CPU budget of %.0f s spent at step %d", budget, self.step)
                        self.total_steps = self.step
                    if self.step >= self.total_steps:
                        break
                if self.batch >= self.steps_per_epoch:
                    self.end_epoch()
                elif self.step == start:
                    raise RuntimeError(f"epoch {self.epoch} has no batches after {self.batch}")
        finally:
            bar.close()
        if self.events["eval"] != self.step:
            self.evaluate()
        published = self.events["publish"] != self.step
        if published:
            self.publish(final=True)
        if published or self.events["checkpoint"] != self.step:
            self.save()
        return self.emit("finished")
