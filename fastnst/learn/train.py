"""train(cfg) -> a trained TransformNet, its checkpoint and its ONNX model.

The loop: Adam on the perceptual loss (Johnson et al. 2016) over random crops of the data.
Checkpoints (``<run_dir>/checkpoint.pt``, atomic) hold everything needed to continue exactly:
model and optimizer state, step, data position, RNG states, the full config and VGG source.
Under ``torchrun`` (WORLD_SIZE > 1) it trains with DistributedDataParallel, gloo on CPUs and
nccl on GPUs; each rank draws a distinct shard of the samples and only rank 0 logs, previews
and writes files.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import signal
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

import fastnst
from fastnst import UserError
from fastnst.config import TrainConfig, from_dict, to_dict, to_json
from fastnst.learn.data import CropDataset, decode_image, make_loader, open_source, to_tensor
from fastnst.learn.device import pick_device
from fastnst.play.files import atomic_path, check_output_path, remove_stale_temps
from fastnst.play.images import load_image, resize_long_side, save_image
from fastnst.learn.losses import PerceptualLoss, stability_loss
from fastnst.learn.nets import TransformNet
from fastnst.learn.vgg import VGGEncoder

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "fastnst-checkpoint-v1"
CHECKPOINT_NAME = "checkpoint.pt"
# Fields a resumed run may change; anything else must match the checkpoint's config.
RESUMABLE_FIELDS = {"steps", "epochs", "device", "workers", "checkpoint_every", "preview_every", "log_every", "output",
                    "int8"}
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


# ---------------------------------------------------------------- checkpoints
def save_checkpoint(path: Path, state: dict[str, Any]) -> Path:
    """torch.save to a temp file, then os.replace: a crash never leaves a half-written file."""
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
    return path


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """A run folder or checkpoint file -> the checkpoint dict, or a UserError."""
    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT_NAME
    if not path.is_file():
        raise UserError(f"no fastnst checkpoint at {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise UserError(f"{path} is not a fastnst checkpoint ({type(e).__name__})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise UserError(f"{path} is not a fastnst checkpoint")
    return ckpt


def config_of(ckpt: dict[str, Any]) -> TrainConfig:
    return from_dict(TrainConfig, ckpt["config"])


def net_of(ckpt: dict[str, Any]) -> TransformNet:
    """The checkpoint's TransformNet with its weights, in eval mode, on the CPU."""
    net = TransformNet(config_of(ckpt).net)
    net.load_state_dict(ckpt["model"])
    return net.eval()


def resume_config(ckpt: dict[str, Any], overrides: dict[str, Any]) -> TrainConfig:
    """The checkpoint's config with ``overrides`` (flat CLI-style keys; None = not given) applied.
    Only RESUMABLE_FIELDS may change: the rest must match, or the run would not be a continuation."""
    cfg = config_of(ckpt)
    saved = to_dict(cfg)
    changed = []
    for k, v in overrides.items():
        if v is None or k in RESUMABLE_FIELDS:
            continue
        if isinstance(v, dict):  # a [net] or [loss] table
            changed += [f"{k}.{kk}" for kk, vv in v.items() if vv is not None and saved[k].get(kk) != vv]
        elif saved.get(k) != v:
            changed.append(k)
    if changed:
        raise UserError(f"--resume continues the checkpoint's run and cannot change {', '.join(changed)} "
                        f"(it may change {', '.join(sorted(RESUMABLE_FIELDS))})")
    return replace(cfg, **{k: v for k, v in overrides.items() if v is not None and k in RESUMABLE_FIELDS})


# ---------------------------------------------------------------- setup
def make_encoder(cfg: TrainConfig) -> VGGEncoder:
    loss = cfg.loss
    weights = None if loss.vgg == "random" else loss.vgg  # "random": untrained VGG19, for tests
    return VGGEncoder([*loss.content_layers, *loss.style_layers], weights=weights, pool=loss.pool)


def check_config(cfg: TrainConfig) -> None:
    # image_size: VGG's deepest default layer and the fast net's H/8 stage need 16 px
    for name, low in (("image_size", 16), ("style_size", 16), ("batch_size", 1), ("checkpoint_every", 1),
                      ("log_every", 1), ("preview_every", 0), ("workers", 0), ("holdout", 0)):
        if getattr(cfg, name) < low:
            raise UserError(f"{name.replace('_', '-')} must be at least {low}, got {getattr(cfg, name)}")
    if cfg.lr <= 0:
        raise UserError(f"lr must be positive, got {cfg.lr}")
    if cfg.steps < 0 or cfg.epochs < 0 or (cfg.steps == 0 and cfg.epochs == 0):
        raise UserError("give a positive number of --steps or --epochs")
    if not cfg.style:
        raise UserError("no style image: give --style PAINTING.jpg")
    if (cfg.loss.distill_weight > 0) != bool(cfg.teacher):
        raise UserError("distillation needs both --teacher RUN_DIR and a positive --distill-weight")


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


# ---------------------------------------------------------------- the loop
def train(cfg: TrainConfig, resume: str | os.PathLike | None = None, export: bool = True) -> TrainResult:
    """Train a TransformNet for ``cfg`` (or continue the run at ``resume``: a run folder or a
    checkpoint, whose config wins except for RESUMABLE_FIELDS, which the caller applies with
    ``resume_config``). All input checks happen before the first step.

    Raises UserError for bad input, TrainingDiverged on a NaN/inf loss (the last checkpoint is
    kept) and KeyboardInterrupt after saving a checkpoint when interrupted (Ctrl-C, SIGTERM).
    """
    ckpt = load_checkpoint(resume) if resume is not None else None
    check_config(cfg)
    started = world_size() > 1 and not dist.is_initialized()
    rank, world, device = _dist_setup(cfg.device)
    try:
        return _train(cfg, ckpt, rank, world, device, resume, export)
    finally:
        if started and dist.is_initialized():
            dist.destroy_process_group()


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def _train(cfg: TrainConfig, ckpt: dict[str, Any] | None, rank: int, world: int, device: torch.device,
           resume: str | os.PathLike | None, export: bool) -> TrainResult:
    run_dir = Path(cfg.run_dir)
    if export and cfg.output:
        check_output_path(cfg.output, (".onnx",), what="model")
    style_name = Path(cfg.style).stem
    style = to_tensor(load_image(cfg.style, cfg.style_size, "style image"))[None]  # (1, 3, H, W)
    source, held = open_source(cfg.data, cfg.data_split, holdout=max(cfg.holdout, 0 if cfg.preview_image else 1))
    if hasattr(source, "__len__"):
        CropDataset(source, cfg.image_size, cfg.seed)[0]  # a UserError here, not inside a DataLoader worker
    preview = _load_preview(cfg, held, max(256, 2 * cfg.image_size))
    try:  # only once the inputs are valid
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot create run folder {run_dir}: {e.strerror}") from None
    ckpt_path = check_output_path(run_dir / CHECKPOINT_NAME)
    remove_stale_temps(ckpt_path)  # left by a kill -9 during a save
    onnx_path = check_output_path(cfg.output or run_dir / f"{style_name}.onnx", (".onnx",), what="model") \
        if export else None
    n_images = len(source) if hasattr(source, "__len__") else None
    per_step = cfg.batch_size * world
    if cfg.steps:
        total_steps = cfg.steps
    elif n_images is None:
        raise UserError("a streamed dataset has no known size: give --steps instead of --epochs")
    else:
        total_steps = math.ceil(cfg.epochs * n_images / per_step)

    torch.manual_seed(cfg.seed)
    net = TransformNet(cfg.net).to(device)
    encoder = make_encoder(cfg)
    ploss = PerceptualLoss(encoder, [style], cfg.loss.content_layers, cfg.loss.style_layers,
                           cfg.loss.content_weight, cfg.loss.style_weight, cfg.loss.tv_weight,
                           distill_weight=cfg.loss.distill_weight).to(device)
    teacher = net_of(load_checkpoint(cfg.teacher)).requires_grad_(False).to(device) if cfg.teacher else None
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    step, data_position, skipped = 0, 0, set()
    if ckpt is not None:
        net.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        step, data_position, skipped = ckpt["step"], ckpt["data_position"], set(ckpt["skipped"])
        torch.set_rng_state(ckpt["rng"]["torch"])
        if device.type == "cuda" and ckpt["rng"].get("cuda") is not None:
            torch.cuda.set_rng_state(ckpt["rng"]["cuda"], device)
        if rank == 0:
            log.info("resuming %s at step %d of %d", resume, step, total_steps)
    elif rank == 0 and ckpt_path.is_file():
        log.warning("%s holds an earlier run's checkpoint; this run will replace it (--resume continues it)", run_dir)
    if rank == 0:  # lines logged after the checkpoint (or by an earlier run) would be logged twice
        _truncate_metrics(run_dir / "metrics.jsonl", step)
    cuda = device.type == "cuda"
    if cuda:  # channels_last + bf16 autocast where the GPU has it; fp32 elsewhere
        net = net.to(memory_format=torch.channels_last)
        ploss = ploss.to(memory_format=torch.channels_last)
    amp = torch.autocast("cuda", dtype=torch.bfloat16) if cuda and torch.cuda.is_bf16_supported() \
        else contextlib.nullcontext()
    model = torch.nn.parallel.DistributedDataParallel(net, device_ids=[device] if cuda else None) if world > 1 else net

    loader = make_loader(source, cfg.image_size, cfg.seed, cfg.batch_size, data_position // world,
                         (total_steps - step) * cfg.batch_size, rank, world, cfg.workers)

    def state() -> dict[str, Any]:
        return {
            "format": CHECKPOINT_FORMAT, "fastnst_version": fastnst.__version__,
            "step": step, "data_position": data_position, "world_size": world,
            "model": net.state_dict(), "optimizer": opt.state_dict(),
            "rng": {"torch": torch.get_rng_state(), "cuda": torch.cuda.get_rng_state(device) if cuda else None},
            "config": to_dict(cfg), "vgg": cfg.loss.vgg, "skipped": sorted(skipped),
        }

    if rank == 0:
        log.info("training %s: %d steps of %d x %dpx on %s (%s images%s), run folder %s", style_name, total_steps,
                 per_step, cfg.image_size, device, n_images if n_images is not None else "streamed",
                 f", {world} processes" if world > 1 else "", run_dir)
    from tqdm.auto import tqdm

    bar = tqdm(total=total_steps, initial=step, unit="step", dynamic_ncols=True, disable=rank != 0)
    sums, n_sum, t_log, last = torch.zeros(4, dtype=torch.float64), 0, time.perf_counter(), {}
    with _StopFlag() as stop:
        batches = iter(loader)
        while step < total_steps:
            batch, bad = next(batches)  # (B, 3, S, S)
            skipped.update(bad)
            batch = batch.to(device, non_blocking=True)
            if cuda:
                batch = batch.contiguous(memory_format=torch.channels_last)
            with amp:
                targets = ploss.content_targets(batch)
                teacher_targets = ploss.content_targets(teacher(batch)) if teacher is not None else None
                out = model(batch)  # (B, 3, S, S)
                losses = ploss(out, targets, teacher_targets)
                if cfg.loss.stability_weight > 0:  # no VGG pass: a second net pass on a shifted crop
                    losses["total"] = losses["total"] + cfg.loss.stability_weight * stability_loss(net, batch, out)
            # One all_reduce a step: every rank sees the same mean losses and stop request,
            # so all of them stop (NaN, Ctrl-C) at the same step.
            vec = torch.stack([losses[k].detach().float() for k in ("content", "style", "tv", "total")]
                              + [torch.tensor(float(stop.requested), device=device)])  # (5,)
            if world > 1:
                dist.all_reduce(vec)
                vec = vec / world
            vec = vec.cpu().double()
            if not torch.isfinite(vec[:4]).all():
                bar.close()
                raise TrainingDiverged(
                    f"loss became {vec[3].item()} at step {step + 1}; stopped. Last good checkpoint: "
                    f"{ckpt_path if ckpt_path.is_file() else 'none yet'} (try a lower --lr or style weight)")
            opt.zero_grad(set_to_none=True)
            losses["total"].backward()
            opt.step()
            step += 1
            data_position += per_step
            sums += vec[:4]
            n_sum += 1
            bar.update(1)
            if rank == 0 and (step % cfg.log_every == 0 or step == total_steps):
                now = time.perf_counter()
                last = dict(zip(("content", "style", "tv", "total"), (sums / n_sum).tolist()))
                img_s = n_sum * per_step / (now - t_log)
                _append_metrics(run_dir / "metrics.jsonl", {"step": step, **last, "images_per_s": img_s})
                bar.set_postfix(c=f"{last['content']:.3g}", s=f"{last['style']:.3g}", tv=f"{last['tv']:.3g}",
                                img_s=f"{img_s:.1f}", refresh=False)
                sums.zero_()
                n_sum, t_log = 0, time.perf_counter()
            if rank == 0 and preview is not None and cfg.preview_every and step % cfg.preview_every == 0:
                _save_preview(net, preview, run_dir / f"preview_{step:06d}.png", device)
            stopping = vec[4].item() > 0
            if rank == 0 and (step % cfg.checkpoint_every == 0 or step == total_steps or stopping):
                save_checkpoint(ckpt_path, state())
            if stopping:
                bar.close()
                if rank == 0:
                    log.info("interrupted at step %d; checkpoint saved: %s (resume with --resume %s)",
                             step, ckpt_path, run_dir)
                raise KeyboardInterrupt
    bar.close()
    del batches, loader

    if world > 1:  # every rank met its own unreadable images
        gathered: list[Any] = [None] * world
        dist.all_gather_object(gathered, sorted(skipped))
        skipped = set().union(*gathered)
    net = net.cpu().eval()
    out = None
    if rank == 0:
        if preview is not None:
            _save_preview(net, preview, run_dir / "preview_final.png", torch.device("cpu"))
        if skipped:
            log.warning("skipped %d unreadable, corrupt or tiny image(s) (short side < %d px)",
                        len(skipped), max(8, cfg.image_size // 2))
        if export:
            out = export_run(net, onnx_path, cfg)
    if world > 1:
        dist.barrier()
    return TrainResult(net, ckpt_path, out, step, sorted(skipped), last, rank)


def export_run(net: TransformNet, path: str | os.PathLike, cfg: TrainConfig) -> Path:
    """Export with the run's metadata and check onnxruntime against torch at two sizes; with
    ``cfg.int8``, quantize that model (calibrated on photos from ``cfg.data``) into ``path``."""
    import tempfile

    from fastnst.learn.export import check_parity, export_onnx

    meta = {"fastnst.style": Path(cfg.style).stem, "fastnst.config": to_json(cfg), "fastnst.vgg": cfg.loss.vgg}
    if not cfg.int8:
        with atomic_path(path) as tmp:  # the model appears only once it passed the parity check
            export_onnx(net, tmp, meta)
            check_parity(net, tmp)
        return Path(path)
    from fastnst.learn.quantize import photo_frames, quantize_int8

    path = check_output_path(path)
    source, _ = open_source(cfg.data, cfg.data_split, holdout=cfg.holdout)
    items = source["image"][:CALIBRATION_PHOTOS + 8] if hasattr(source, "__len__") \
        else [x["image"] for x in source.take(CALIBRATION_PHOTOS + 8)]
    frames = photo_frames(items, CALIBRATION_PHOTOS + 8)
    held = max(1, min(8, len(frames) // 5))  # photos that check the quantized model, not calibrate it
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = export_onnx(net, Path(tmp) / "float.onnx", meta)
        check_parity(net, fp32)
        quantize_int8(fp32, path, frames[:-held], frames[-held:])
    return path


# ---------------------------------------------------------------- run-folder files
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
def _save_preview(net: TransformNet, img: torch.Tensor, path: Path, device: torch.device) -> None:
    was_training = net.training
    net.eval()
    y = net(img.to(device))[0].float().cpu()  # (3, H, W) in [0, 1]
    net.train(was_training)
    save_image((y.permute(1, 2, 0) * 255).round().byte().numpy(), path)


def _append_metrics(path: Path, row: dict[str, Any]) -> None:
    with open(path, "a") as f:
        f.write(json.dumps({"time": round(time.time(), 3), **row}) + "\n")


def _truncate_metrics(path: Path, step: int) -> None:
    """Drop the lines logged after ``step``: the checkpoint we resume from, or 0 for a new run."""
    if not path.is_file():
        return
    keep = [line for line in path.read_text().splitlines() if line.strip() and json.loads(line)["step"] <= step]
    with atomic_path(path) as tmp:
        tmp.write_text("".join(line + "\n" for line in keep))
