"""train(cfg) -> a trained TransformNet, its checkpoint and its ONNX model: the training loop.

Adam on the perceptual loss (Johnson et al. 2016) over random crops of the data. With several
styles, one conditional-instance-norm net (Dumoulin et al. 2017) learns them all: sample k of
the run is trained on style k mod S, so every batch is as balanced over the styles as its size
allows and resume stays exact. With ``cfg.base``, new styles are added to a trained run, or some
of its styles retrained (``cfg.tune``): only those styles' norm parameters train, and everything
else, the other styles included, stays bit-identical.

Under ``torchrun`` (WORLD_SIZE > 1) it trains with DistributedDataParallel, gloo on CPUs and
nccl on GPUs; each rank draws a distinct shard of the samples and only rank 0 logs, previews
and writes files. Checkpoints: ``fastnst.learn.checkpoint``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import shlex
import signal
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.distributed as dist

import fastnst
from fastnst import UserError
from fastnst.config import VGG_MIN_SIDE, TrainConfig, to_dict
from fastnst.learn.checkpoint import (CHECKPOINT_FORMAT, CHECKPOINT_NAME, config_of, load_checkpoint, load_trained,
                                      model_file, net_of, run_folder, save_checkpoint)
from fastnst.learn.data import CropDataset, decode_image, make_loader, open_dataset, to_tensor
from fastnst.learn.device import autocast, pick_device, pick_precision
from fastnst.learn.export import export_model, select_styles
from fastnst.learn.losses import PerceptualLoss, stability_loss
from fastnst.learn.nets import TransformNet
from fastnst.learn.rundir import RunLock, holds_run
from fastnst.play.files import atomic_path, check_output_path
from fastnst.play.images import load_image, resize_long_side, save_image
from fastnst.signals import record_stop

log = logging.getLogger(__name__)

CALIBRATION_PHOTOS = 32  # training photos that calibrate an int8 export (8 more check it)


class TrainingDiverged(UserError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


@dataclass
class TrainResult:
    net: TransformNet  # this rank's final weights (identical on every rank)
    checkpoint: Path
    onnx: Path | None
    step: int
    skipped: list[str] = field(default_factory=list)  # unreadable/tiny images met on the way
    losses: dict[str, float] = field(default_factory=dict)  # the last logged losses
    rank: int = 0


# ---------------------------------------------------------------- setup
def lr_at(cfg: TrainConfig, step: int, total_steps: int) -> float:
    """The learning rate of the step after ``step`` steps (a function of the step alone, so
    resuming follows the same curve)."""
    if cfg.lr_schedule == "cosine":
        return cfg.lr * 0.5 * (1 + math.cos(math.pi * step / total_steps))
    return cfg.lr


def check_config(cfg: TrainConfig) -> None:
    """The checks across fields (each number is checked by the config itself)."""
    if not cfg.style_paths:
        raise UserError("no style image: give a painting to train on")
    if cfg.names and len(cfg.names) != len(cfg.style_paths):
        raise UserError(f"{len(cfg.names)} style names for {len(cfg.style_paths)} style images")
    if len(set(cfg.style_names)) != len(cfg.style_paths):
        raise UserError(f"two styles share a name: {', '.join(cfg.style_names)} (rename a file)")
    try:  # the net's own checks: stem, block, upsample, padding, kernel parity
        TransformNet(cfg.net)
    except ValueError as e:
        raise UserError(f"config [net]: {e}") from None
    if cfg.net.n_styles != len(cfg.style_paths):
        raise UserError(f"the net has {cfg.net.n_styles} style(s) but {len(cfg.style_paths)} style image(s) are given")
    if cfg.tune and not cfg.base:
        raise UserError("tuning retrains styles of a trained run: give that run (or its model) as the base")
    if unknown := sorted(set(cfg.tune) - set(cfg.style_names)):
        raise UserError(f"no style {', '.join(unknown)} to tune; the styles are {', '.join(cfg.style_names)}")
    if cfg.base and Path(cfg.run_dir).resolve() == run_folder(cfg.base).resolve():
        raise UserError(f"run folder {cfg.run_dir} is the base run's; give the new run a run folder of its own")
    if (cfg.loss.distill_weight > 0) != bool(cfg.teacher):
        raise UserError("distillation needs both a teacher (a trained run or model) and a positive distill_weight")


def _dist_setup(device_name: str) -> tuple[int, int, torch.device]:
    """(rank, world size, device); initialises the process group under torchrun."""
    world = world_size()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = pick_device(device_name, local_rank)
    if world > 1 and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    rank = dist.get_rank() if world > 1 else 0
    return rank, world, device


class _StopFlag:
    """SIGINT/SIGTERM -> stop after the current step (a second Ctrl-C interrupts at once)."""

    def __init__(self):
        self.requested = False
        self._old: dict[int, Any] = {}

    def _handle(self, signum, frame):
        record_stop(signum)
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True
        log.warning("stopping after this step (Ctrl-C again to abort without a checkpoint)")

    def __enter__(self):
        with contextlib.suppress(ValueError):  # not the main thread: leave signals alone
            for s in (signal.SIGINT, signal.SIGTERM):
                self._old[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc):
        for s, h in self._old.items():
            signal.signal(s, h)


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def _base_net(cfg: TrainConfig, base: dict[str, Any]) -> TransformNet:
    """For ``cfg.base`` (``base``, as ``load_trained`` read it): its net grown to ``cfg.net.n_styles``
    styles, each new style's norm parameters starting from the mean of the base styles'."""
    bcfg = config_of(base)
    n_old = bcfg.net.n_styles
    if bcfg.style_names != cfg.style_names[:n_old] or {**to_dict(bcfg.net), "n_styles": cfg.net.n_styles} != to_dict(cfg.net):
        raise UserError(f"{cfg.base}: the new run must keep the base's net and its styles first "
                        f"({', '.join(bcfg.style_names)})")
    old = net_of(base)
    net = TransformNet(cfg.net)
    state = old.state_dict()
    for name, t in net.state_dict().items():
        if t.shape != state[name].shape:  # (N_new, C) norm parameters
            state[name] = torch.cat([state[name], state[name].mean(0, keepdim=True).expand(t.shape[0] - n_old, -1)])
    net.load_state_dict(state)
    return net


def _start_new_styles(cfg: TrainConfig, net: TransformNet, ploss: PerceptualLoss, source: Any, n_base: int,
                      trained: list[int], device: torch.device, precision: str) -> None:
    """New styles' norm parameters from the base style ``cfg.add_from`` names, judged on the run's
    first crops (``fastnst.learn.addstyle``)."""
    from fastnst.learn.addstyle import ADD_FROM, start_new_styles

    if cfg.add_from not in ADD_FROM and cfg.add_from not in cfg.style_names[:n_base]:
        raise UserError(f"add_from must be {', '.join(ADD_FROM)} or a style of the base "
                        f"({', '.join(cfg.style_names[:n_base])}), got {cfg.add_from!r}")
    if cfg.add_from == "nearest" and not hasattr(source, "__len__"):
        log.info("a streamed dataset: new styles start from the mean of the base styles")
        return
    if not any(i >= n_base for i in trained) or cfg.add_from == "mean":
        return
    data = CropDataset(source, cfg.image_size, cfg.seed)
    crops = torch.stack([data[k][0] for k in range(cfg.batch_size)]).to(device)  # the first batch's crops
    with autocast(device, precision):
        start_new_styles(net, ploss, crops, n_base, trained, cfg.add_from, cfg.style_names)


def trainable_parameters(net: TransformNet, styles: list[int] | None = None) -> list[torch.nn.Parameter]:
    """All parameters; with ``styles``, only those styles' norm rows (the rest get no gradient,
    so Adam leaves them bit-identical)."""
    if styles is None:
        return list(net.parameters())
    net.requires_grad_(False)
    params = []
    for norm in net.norms():
        for p in (norm.weight, norm.bias):
            mask = torch.zeros_like(p[:, :1])  # (N, 1)
            mask[styles] = 1
            p.requires_grad_(True)
            p.register_hook(lambda g, m=mask: g * m)
            params.append(p)
    return params


# ---------------------------------------------------------------- what the steps share
LOSS_TERMS = ("content", "style", "tv", "total")


@dataclass
class StepMetrics:
    """One step's figures, as every rank sees them after the step's single all_reduce (so all ranks
    stop, on a NaN or a Ctrl-C, at the same step). Tensors, so that the all_reduce can sum them."""

    losses: torch.Tensor  # (4,) LOSS_TERMS; summed over ranks, then the mean
    stop: torch.Tensor  # (1,) > 0: some rank was asked to stop
    style_sums: torch.Tensor  # (S,) per style, the sum of its samples' style terms
    style_counts: torch.Tensor  # (S,) per style, its samples

    @classmethod
    def of_step(cls, losses: dict[str, torch.Tensor], stop: bool, which: torch.Tensor, n_styles: int,
                device: torch.device) -> "StepMetrics":
        """This rank's figures: ``losses`` from PerceptualLoss, ``which`` (B,) the samples' styles."""
        return cls(torch.stack([losses[k].detach().float() for k in LOSS_TERMS]),
                   torch.tensor([float(stop)], device=device),
                   torch.zeros(n_styles, device=device).index_add(0, which.to(device), losses["style_each"].detach().float()),
                   torch.bincount(which, minlength=n_styles).float().to(device))

    def to_tensor(self) -> torch.Tensor:
        return torch.cat([self.losses, self.stop, self.style_sums, self.style_counts])

    @classmethod
    def from_tensor(cls, vec: torch.Tensor) -> "StepMetrics":
        n = (len(vec) - 5) // 2
        return cls(vec[:4], vec[4:5], vec[5:5 + n], vec[5 + n:])

    def all_reduced(self, world: int) -> "StepMetrics":
        """Every rank's figures summed (the losses averaged), on the CPU in float64."""
        vec = self.to_tensor()
        if world > 1:
            dist.all_reduce(vec)
            vec[:4] = vec[:4] / world
        return StepMetrics.from_tensor(vec.cpu().double())

    @property
    def total(self) -> float:
        return self.losses[3].item()


@dataclass
class MetricSums:
    """StepMetrics summed since the last metrics.jsonl row."""

    n_styles: int
    steps: int = 0
    losses: torch.Tensor = field(init=False)  # (4,) LOSS_TERMS
    style_sums: torch.Tensor = field(init=False)  # (S,)
    style_counts: torch.Tensor = field(init=False)  # (S,)

    def __post_init__(self):
        self.losses = torch.zeros(4, dtype=torch.float64)
        self.style_sums = torch.zeros(self.n_styles, dtype=torch.float64)
        self.style_counts = torch.zeros(self.n_styles, dtype=torch.float64)

    def add(self, m: StepMetrics) -> None:
        self.steps += 1
        self.losses += m.losses
        self.style_sums += m.style_sums
        self.style_counts += m.style_counts

    def means(self, names: tuple[str, ...]) -> tuple[dict[str, float], dict[str, float]]:
        """(the mean of each loss term, the mean style term of each style that had samples)."""
        row = dict(zip(LOSS_TERMS, (self.losses / self.steps).tolist()))
        per_style = {name: (self.style_sums[i] / self.style_counts[i]).item() for i, name in enumerate(names)
                     if self.style_counts[i] > 0}
        return row, per_style


@dataclass
class _Run:
    """What a run's steps share: made once by ``_setup``; ``step``, ``data_position``, ``skipped``
    and ``good`` move as it trains."""

    cfg: TrainConfig
    rank: int
    world: int
    device: torch.device
    precision: str
    net: TransformNet  # this rank's weights
    model: torch.nn.Module  # ``net``, or ``net`` in DistributedDataParallel under torchrun
    ploss: PerceptualLoss
    teacher: TransformNet | None
    opt: torch.optim.Optimizer
    loader: Any
    trained: list[int]  # the styles samples are drawn for
    total_steps: int
    run_dir: Path
    ckpt_path: Path
    onnx_path: Path | None
    preview: torch.Tensor | None
    step: int
    data_position: int  # samples drawn so far, every rank's
    skipped: set[str]
    good: str  # what a divergence message names: a checkpoint of finite weights that resumes

    @property
    def per_step(self) -> int:
        return self.cfg.batch_size * self.world

    @property
    def channels_last(self) -> bool:
        # The layout oneDNN's and cuDNN's fast bf16 convolutions want; in fp32 it is slower (docs/training.md).
        return self.precision == "bf16"

    def state(self) -> dict[str, Any]:
        """The checkpoint's contents (``fastnst.learn.checkpoint``)."""
        cuda = self.device.type == "cuda"
        return {
            "format": CHECKPOINT_FORMAT, "fastnst_version": fastnst.__version__,
            "step": self.step, "data_position": self.data_position, "world_size": self.world,
            "precision": self.precision, "model": self.net.state_dict(), "optimizer": self.opt.state_dict(),
            "rng": {"torch": torch.get_rng_state(), "cuda": torch.cuda.get_rng_state(self.device) if cuda else None},
            "config": to_dict(self.cfg), "vgg": self.cfg.loss.vgg, "skipped": sorted(self.skipped),
        }


# ---------------------------------------------------------------- the loop
def train(cfg: TrainConfig, resume: str | os.PathLike | None = None, export: bool = True,
          overwrite: bool = False,
          on_step: Callable[[int, int, TransformNet, float | None], None] | None = None) -> TrainResult:
    """Train a TransformNet for ``cfg`` (or continue the run at ``resume``: a run folder or a
    checkpoint, whose config wins except for RESUMABLE_FIELDS, which the caller applies with
    ``checkpoint.resume_config``). The run is written to ``cfg.run_dir``, which is locked for the run,
    and which must not hold another run unless ``overwrite``. All input checks happen before the
    run folder is made.

    ``on_step(step, total_steps, net, loss)``, if given, runs on rank 0 before the first step
    (loss None) and after each one (e.g. to publish the net as it learns).

    Raises UserError for bad input, TrainingDiverged on a NaN/inf loss (the last checkpoint is
    kept) and KeyboardInterrupt after saving a checkpoint when interrupted (Ctrl-C, SIGTERM).
    """
    ckpt = load_checkpoint(resume, resuming=True) if resume is not None else None
    check_config(cfg)
    started = world_size() > 1 and not dist.is_initialized()
    rank, world, device = _dist_setup(cfg.device)
    try:
        with contextlib.ExitStack() as stack:  # the run folder's lock, once taken
            return _train(cfg, ckpt, rank, world, device, resume, export, overwrite, stack, on_step)
    finally:
        if started and dist.is_initialized():
            dist.destroy_process_group()


def _train(cfg: TrainConfig, ckpt: dict[str, Any] | None, rank: int, world: int, device: torch.device,
           resume: str | os.PathLike | None, export: bool, overwrite: bool, stack: contextlib.ExitStack,
           on_step: Callable[[int, int, TransformNet, float | None], None] | None = None) -> TrainResult:
    run = _setup(cfg, ckpt, rank, world, device, resume, export, overwrite, stack)
    from tqdm.auto import tqdm  # imported late: only a training draws a bar

    # Redrawn ten times a second on a terminal, once a minute into a log file (nohup, a cluster job).
    bar = tqdm(total=run.total_steps, initial=run.step, unit="step", dynamic_ncols=True, disable=rank != 0,
               mininterval=0.1 if sys.stderr.isatty() else 60)
    stack.callback(bar.close)  # before an error's message is printed, not after it
    sums, t_log, last = MetricSums(cfg.net.n_styles), time.perf_counter(), {}  # the next metrics row's
    if on_step is not None and rank == 0:
        on_step(run.step, run.total_steps, run.net, None)
    with _StopFlag() as stop:
        batches = iter(run.loader)  # it draws a seed from torch's RNG, so the saved state goes back after it
        if ckpt is not None:
            torch.set_rng_state(ckpt["rng"]["torch"])
            if device.type == "cuda" and ckpt["rng"].get("cuda") is not None:
                torch.cuda.set_rng_state(ckpt["rng"]["cuda"], device)
        while run.step < run.total_steps:
            batch, bad = next(batches)  # (B, 3, S, S)
            run.skipped.update(bad)  # unreadable images the loader passed over, reported at the end
            batch, weights, metrics = _step(run, batch, stop)
            sums.add(metrics)
            bar.update(1)
            if on_step is not None and rank == 0:
                on_step(run.step, run.total_steps, run.net, metrics.total)
            # Logs, previews and checkpoints: rank 0 writes, every rank checks the weights.
            if rank == 0 and (run.step % cfg.log_every == 0 or run.step == run.total_steps):
                last = _log_row(run, sums, time.perf_counter() - t_log, bar)
                sums, t_log = MetricSums(cfg.net.n_styles), time.perf_counter()
            if rank == 0 and run.preview is not None and cfg.preview_every and run.step % cfg.preview_every == 0:
                _save_preview(run.net, run.preview, run.run_dir / f"preview_{run.step:06d}.png", device, run.trained[0])
            stopping = metrics.stop.item() > 0  # on every rank at once: the request went through the all_reduce
            if run.step % cfg.checkpoint_every == 0 or run.step == run.total_steps or stopping:
                _save_checkpoint(run, batch, weights)
            if stopping:
                bar.close()
                if rank == 0:
                    log.info("interrupted at step %d; checkpoint saved: %s (resume run %s to continue)",
                             run.step, run.ckpt_path, run.run_dir)
                raise KeyboardInterrupt
    bar.close()
    del batches  # the loader's worker processes end before the export
    return _finish(run, last)


def _setup(cfg: TrainConfig, ckpt: dict[str, Any] | None, rank: int, world: int, device: torch.device,
           resume: str | os.PathLike | None, export: bool, overwrite: bool, stack: contextlib.ExitStack) -> _Run:
    """Every input checked, then the run folder claimed: the net, loss, optimizer and data of the run,
    at the checkpoint's step when resuming."""
    run_dir = Path(cfg.run_dir)
    if export and cfg.output and Path(cfg.output).parent != run_dir:  # one in the run folder is checked below
        check_output_path(cfg.output, (".onnx",), what="model")
    # A base's styles stay frozen (no gradient, no samples) unless tuned: only the new and tuned
    # paintings are read and get Gram targets, so a shipped model's other paintings need not be at hand.
    base = load_trained(cfg.base) if cfg.base else None
    n_base = config_of(base).net.n_styles if base else 0
    trained = [i for i, name in enumerate(cfg.style_names) if i >= n_base or name in cfg.tune]
    styles = [to_tensor(_load_style(cfg, i, i < n_base))[None] for i in trained]  # (1, 3, H, W) each
    source, held = open_dataset(cfg.data, cfg.data_split, holdout=max(cfg.holdout, 0 if cfg.preview_image else 1),
                                extra=cfg.extra_data)
    if hasattr(source, "__len__"):
        CropDataset(source, cfg.image_size, cfg.seed)[0]  # a UserError here, not inside a DataLoader worker
    preview = _load_preview(cfg, held, max(256, 2 * cfg.image_size))
    n_images = len(source) if hasattr(source, "__len__") else None
    per_step = cfg.batch_size * world
    if cfg.steps:
        total_steps = cfg.steps
    elif n_images is None:
        raise UserError("a streamed dataset has no known size: give a number of steps instead of epochs")
    else:
        total_steps = math.ceil(cfg.epochs * n_images / per_step)

    # The net, its loss, a teacher, the optimizer; in this order, which the seed's draws follow.
    # A stride2 stem keeps every layer at H/2 and below: kernels so small that their launches bound a step.
    precision, why = pick_precision(cfg.precision, device, launch_bound=cfg.net.stem == "stride2")
    torch.manual_seed(cfg.seed)
    net = (_base_net(cfg, base) if base else TransformNet(cfg.net)).to(device)
    ploss = PerceptualLoss.from_config(cfg.loss, styles).to(device)
    if base and ckpt is None:
        _start_new_styles(cfg, net, ploss, source, n_base, trained, device, precision)
    teacher = net_of(load_trained(cfg.teacher)).requires_grad_(False).to(device) if cfg.teacher else None
    if teacher is not None and teacher.cfg.n_styles != cfg.net.n_styles:
        raise UserError(f"the teacher has {teacher.cfg.n_styles} style(s), this run {cfg.net.n_styles}")
    opt = torch.optim.Adam(trainable_parameters(net, trained if base else None), lr=cfg.lr)
    step, data_position, skipped = 0, 0, set()
    if ckpt is not None:
        try:
            net.load_state_dict(ckpt["model"])
            opt.load_state_dict(ckpt["optimizer"])
        except (RuntimeError, ValueError, KeyError) as e:
            raise UserError(f"{resume}: the checkpoint's weights do not fit its own config ({type(e).__name__})") from None
        step, data_position, skipped = ckpt["step"], ckpt["data_position"], set(ckpt["skipped"])

    # Every check is done: only now the run folder is made (or claimed), and locked for the run.
    ckpt_path = run_dir / CHECKPOINT_NAME
    if rank == 0:
        _claim_run_folder(run_dir, resume, overwrite, stack)
        for tmp in run_dir.glob(f".{ckpt_path.stem}.*.tmp{ckpt_path.suffix}"):  # a kill -9 during a save; ours now
            tmp.unlink(missing_ok=True)
    onnx_path = check_output_path(cfg.output or run_dir / f"{cfg.model_name}.onnx", (".onnx",), what="model") \
        if export and rank == 0 else None
    if ckpt is not None and rank == 0:
        log.info("resuming %s at step %d of %d, in %s", resume, step, total_steps, run_dir)
        if ckpt.get("precision", "fp32") != precision:
            log.warning("the checkpoint trained in %s and this run continues in %s: not bit-exact with an "
                        "uninterrupted run", ckpt.get("precision", "fp32"), precision)
    if rank == 0:  # lines logged after the checkpoint (or by an earlier run) would be logged twice
        _truncate_metrics(run_dir / "metrics.jsonl", step)

    # The layout and the processes the steps run in, and the data from where the run stands.
    if precision == "bf16":  # _Run.channels_last
        net = net.to(memory_format=torch.channels_last)
        ploss = ploss.to(memory_format=torch.channels_last)
    cuda = device.type == "cuda"
    model = torch.nn.parallel.DistributedDataParallel(net, device_ids=[device] if cuda else None) if world > 1 else net
    loader = make_loader(source, cfg.image_size, cfg.seed, cfg.batch_size, data_position // world,
                         (total_steps - step) * cfg.batch_size, rank, world, cfg.workers)
    good = _last_good(Path(resume) if ckpt is not None else None, step, run_dir)
    run = _Run(cfg, rank, world, device, precision, net, model, ploss, teacher, opt, loader, trained, total_steps,
               run_dir, ckpt_path, onnx_path, preview, step, data_position, skipped, good)
    if rank == 0:
        names = cfg.style_names
        log.info("training %s: %d steps of %d x %dpx on %s in %s (%s%s), %s images%s, run folder %s",
                 ", ".join(names[i] for i in trained), total_steps, per_step, cfg.image_size, device,
                 precision, why, ", channels_last" if run.channels_last else "",
                 n_images if n_images is not None else "streamed", f", {world} processes" if world > 1 else "",
                 run_dir)
    return run


def _step(run: _Run, batch: torch.Tensor, stop: _StopFlag) -> tuple[torch.Tensor, torch.Tensor, StepMetrics]:
    """One optimizer step on ``batch`` (B, 3, S, S): (the batch on the device, its (B, N) style
    weights, the step's metrics, every rank's)."""
    cfg, device, n_styles = run.cfg, run.device, run.cfg.net.n_styles
    batch = batch.to(device, non_blocking=True)
    if run.channels_last:
        batch = batch.contiguous(memory_format=torch.channels_last)
    # Sample k of the run (k = j * world + rank for this rank's j-th sample) learns style k mod S.
    trained = torch.tensor(run.trained)
    k = (run.data_position // run.world + torch.arange(len(batch))) * run.world + run.rank  # (B,)
    style_index = trained[k % len(trained)]  # (B,)
    style_weights = torch.nn.functional.one_hot(style_index, n_styles).float().to(device)  # (B, N)
    # The transform nets run in fp32 and only VGG under autocast: in bf16 a net's gradient
    # drifts from fp32's as it trains (docs/training.md), and fp32 there costs little.
    out = run.model(batch, style_weights)  # (B, 3, S, S)
    taught = run.teacher(batch, style_weights) if run.teacher is not None else None
    with autocast(device, run.precision):
        targets = run.ploss.content_targets(batch)
        teacher_targets = run.ploss.content_targets(taught) if taught is not None else None
        losses = run.ploss(out, targets, teacher_targets, style_weights[:, trained])  # ploss knows the trained styles
    if cfg.loss.stability_weight > 0:  # no VGG pass: a second net pass on a shifted crop
        losses["total"] = losses["total"] + cfg.loss.stability_weight * stability_loss(
            lambda x: run.net(x, style_weights), batch, out)
    metrics = StepMetrics.of_step(losses, stop.requested, style_index, n_styles, device).all_reduced(run.world)
    if not torch.isfinite(metrics.losses).all():
        raise TrainingDiverged(f"loss became {metrics.total} at step {run.step + 1}; stopped. {run.good}")
    run.opt.zero_grad(set_to_none=True)
    losses["total"].backward()
    for group in run.opt.param_groups:
        group["lr"] = lr_at(cfg, run.step, run.total_steps)
    run.opt.step()
    run.step += 1
    run.data_position += run.per_step
    return batch, style_weights, metrics


def _save_checkpoint(run: _Run, batch: torch.Tensor, style_weights: torch.Tensor) -> None:
    """The checkpoint, once the weights are known good on every rank (else TrainingDiverged, and
    the last checkpoint stays)."""
    if not _finite(run.net, batch, style_weights, run.world):  # the next step's loss would be NaN
        raise TrainingDiverged(f"the weights diverged at step {run.step} (the net's output is no longer "
                               f"finite); stopped. {run.good}")
    if run.rank == 0:
        save_checkpoint(run.ckpt_path, run.state())
    run.good = _last_good(run.ckpt_path, run.step, run.run_dir)


def _finish(run: _Run, last: dict[str, float]) -> TrainResult:
    """The final preview and, on rank 0, the exported model."""
    skipped = run.skipped
    if run.world > 1:  # every rank met its own unreadable images
        gathered: list[Any] = [None] * run.world
        dist.all_gather_object(gathered, sorted(skipped))
        skipped = set().union(*gathered)
    net = run.net.cpu().eval().to(memory_format=torch.contiguous_format)
    out = None
    if run.rank == 0:
        if run.preview is not None:
            _save_preview(net, run.preview, run.run_dir / "preview_final.png", torch.device("cpu"), run.trained[0])
        if skipped:
            log.warning("skipped %d unreadable, corrupt or tiny image(s) (short side < %d px)",
                        len(skipped), max(8, run.cfg.image_size // 2))
        if run.onnx_path is not None:
            calibration = calibration_photos(run.cfg) if run.cfg.int8 else None
            out = export_model(net, run.onnx_path, run.cfg, calibration)
    if run.world > 1:
        dist.barrier()
    return TrainResult(net, run.ckpt_path, out, run.step, sorted(skipped), last, run.rank)


def calibration_photos(cfg: TrainConfig) -> list[Any]:
    """The training photos (paths or {"bytes", "path"}) that calibrate an int8 export and check it."""
    source, _ = open_dataset(cfg.data, cfg.data_split, holdout=cfg.holdout)
    n = CALIBRATION_PHOTOS + 8
    return source["image"][:n] if hasattr(source, "__len__") else [x["image"] for x in source.take(n)]


def _log_row(run: _Run, sums: MetricSums, seconds: float, bar) -> dict[str, float]:
    """Append the means since the last row to metrics.jsonl and show them on the progress bar."""
    names = run.cfg.style_names
    row, per_style = sums.means(names)
    img_s = sums.steps * run.per_step / seconds
    _append_metrics(run.run_dir / "metrics.jsonl", {"step": run.step, **row, "images_per_s": img_s,
                                                    **({"style_by_name": per_style} if len(names) > 1 else {})})
    # One line however many styles: the mean style term here, each style's in metrics.jsonl.
    bar.set_postfix(c=f"{row['content']:.3g}", s=f"{row['style']:.3g}", img_s=f"{img_s:.1f}", refresh=False)
    return row


# ---------------------------------------------------------------- run-folder files
def _claim_run_folder(run_dir: Path, resume: str | os.PathLike | None, overwrite: bool,
                      stack: contextlib.ExitStack) -> None:
    """Make ``run_dir`` and hold its lock for the run (``stack``); refuse a folder that holds another
    run unless ``overwrite`` (a run resumed in its own folder continues there)."""
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot create run folder {run_dir}: {e.strerror}") from None
    if not os.access(run_dir, os.W_OK):
        raise UserError(f"run folder is not writable: {run_dir}")
    stack.enter_context(RunLock(run_dir))
    own = resume is not None and run_folder(resume).resolve() == run_dir.resolve()
    found = holds_run(run_dir)
    if found and not own and overwrite:
        log.warning("%s holds an earlier run; this run replaces it (overwrite is on)", run_dir)
    elif found and not own:
        hint = f"resume {shlex.quote(str(run_dir))} to continue" if found == CHECKPOINT_NAME else "it has no checkpoint"
        raise UserError(f"run folder {run_dir} holds another run ({found}; {hint}); choose another run folder, "
                        "or overwrite it")


def _last_good(checkpoint: Path | None, step: int, run_dir: Path) -> str:
    if checkpoint is None:
        return "This run saved no checkpoint yet (try a lower lr or style_weight)."
    return (f"Last good checkpoint: {checkpoint} (step {step}; resume it to continue, "
            "or start again with a lower lr or style_weight).")


@torch.no_grad()
def _finite(net: TransformNet, batch: torch.Tensor, style_weights: torch.Tensor, world: int) -> bool:
    """Whether the weights and the net's output on ``batch`` are finite, on every rank."""
    ok = all(torch.isfinite(p).all() for p in net.parameters()) and torch.isfinite(net(batch, style_weights)).all()
    flag = torch.tensor([float(ok)], device=batch.device)
    if world > 1:
        dist.all_reduce(flag, op=dist.ReduceOp.MIN)
    return flag.item() > 0


def _load_style(cfg: TrainConfig, i: int, recorded: bool) -> np.ndarray:
    """Painting ``i`` at long side ``style_size``; a UserError if VGG cannot take it (too thin).
    ``recorded``: a base's style, whose path was recorded where the base was trained."""
    if recorded and not Path(cfg.style_paths[i]).is_file():
        name = cfg.style_names[i]
        raise UserError(f"the painting of style {name} is not at {cfg.style_paths[i]}: give where it is "
                        f"as style image {shlex.quote(name)}=PATH")
    img = load_image(cfg.style_paths[i], cfg.style_size, "style image")
    h, w = img.shape[:2]
    if min(h, w) < VGG_MIN_SIDE:
        raise UserError(f"style image {cfg.style_paths[i]} is too thin: {w}x{h} at style_size {cfg.style_size}, "
                        f"VGG needs a short side of {VGG_MIN_SIDE} px (use a larger style_size or crop it)")
    return img


def _load_preview(cfg: TrainConfig, held: list[Any], max_size: int) -> torch.Tensor | None:
    """The preview image as (1, 3, H, W): ``cfg.preview_image``, else the held-out data item."""
    if cfg.preview_image:
        return to_tensor(load_image(cfg.preview_image, max_size, "preview image"))[None]
    img = decode_image(held[0], 1) if held else None
    if img is None:
        log.info("no previews: the held-out image is unreadable")
        return None
    if max(img.size) > max_size:
        img = resize_long_side(img, max_size)
    return to_tensor(np.asarray(img))[None]


@torch.no_grad()
def _save_preview(net: TransformNet, img: torch.Tensor, path: Path, device: torch.device, style_index: int) -> None:
    """``img`` in style number ``style_index`` (the first one this run trains) to ``path``."""
    was_training = net.training
    net.eval()
    weights = torch.nn.functional.one_hot(torch.tensor([style_index]), net.cfg.n_styles).float().to(device)  # (1, N)
    y = net(img.to(device), weights)[0].float().cpu()  # (3, H, W) in [0, 1]
    net.train(was_training)
    save_image((y.permute(1, 2, 0) * 255).round().byte().numpy(), path)


def _append_metrics(path: Path, row: dict[str, Any]) -> None:
    with open(path, "a") as f:
        f.write(json.dumps({"time": round(time.time(), 3), **row}) + "\n")


def _truncate_metrics(path: Path, step: int) -> None:
    """Drop the lines logged after ``step`` (the checkpoint we resume from, or 0 for a new run) and
    a line a kill cut short."""
    if not path.is_file():
        return

    def logged_by(line: str) -> bool:
        try:
            return json.loads(line)["step"] <= step
        except (json.JSONDecodeError, KeyError, TypeError):
            return False

    keep = [line for line in path.read_text().splitlines() if logged_by(line)]
    with atomic_path(path) as tmp:
        tmp.write_text("".join(line + "\n" for line in keep))


def export_trained(source: str | os.PathLike, output: str | os.PathLike | None = None, int8: bool | None = None,
                   calibrate: str | None = None, keep: Sequence[str] = (),
                   rename: Mapping[str, str] | None = None) -> tuple[Path, int | None]:
    """`fastnst export`: a run, checkpoint or exported model (``source``), cut down to the styles ``keep``
    and renamed (``select_styles``), to ``output`` (default: ``<model name>.onnx`` here, never replacing
    a file), int8 if ``int8`` (default: as trained) calibrated on ``calibrate`` (default: the training
    photos). Returns the path and the checkpoint's step (None for a model)."""
    ckpt = load_trained(source)
    cfg = config_of(ckpt)
    if int8 is not None:
        cfg = replace(cfg, int8=int8)
    if calibrate:
        cfg = replace(cfg, data=calibrate, data_split="train", holdout=0)
    net, cfg = select_styles(net_of(ckpt), cfg, keep, rename)
    out = check_output_path(output or f"{cfg.model_name}.onnx", (".onnx",), inputs=(model_file(source),), what="model")
    if not output and out.exists():  # a name the user did not give is never replaced
        raise UserError(f"{out} exists; name the output file (naming it {shlex.quote(str(out))} replaces it)")
    try:
        calibration = calibration_photos(cfg) if cfg.int8 else None
    except UserError as e:  # e.g. a shipped model: its training photos are on another machine
        raise UserError(f"{e}; int8 needs calibration photos: give a folder of them", setting="calibrate") from None
    return export_model(net, out, cfg, calibration), ckpt["step"]
